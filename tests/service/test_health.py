"""Stage health: a stage that dies is restarted, /healthz tells, ingress answers 503 meanwhile."""

from __future__ import annotations

import asyncio
import base64
import errno
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from drainpipe.bus import BusUnavailable, OutRecord
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.clock import FixedClock
from drainpipe.config import Config
from drainpipe.ingest.acceptor import LocalAcceptor
from drainpipe.service.pipeline import Pipeline
from drainpipe.telemetry.health import FAILING_S, Health
from tests.conftest import FIXED_NOW_MS
from tests.support import drains
from tests.support.waiting import until
from tests.system.test_end_to_end import iso, points


class Ticks:
    """A clock whose monotonic time moves only when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now_ms(self) -> int:
        return FIXED_NOW_MS

    def monotonic(self) -> float:
        return self.t


def test_a_crashed_stage_fails_health_until_it_runs_again() -> None:
    health = Health(Ticks())
    stage = health.stage("rollup")
    assert health.problem() is None
    stage.crashed(OSError(errno.ENOSPC, "No space left on device"))
    assert health.problem() == (
        "rollup crashed (OSError: [Errno 28] No space left on device) and is being restarted"
    )
    assert health.report()["status"] == "failing"
    stage.restarted()
    assert health.problem() is None
    assert health.report()["stages"]["rollup"]["restarts"] == 1


def test_a_stage_without_progress_or_always_behind_fails_health() -> None:
    clock = Ticks()
    health = Health(clock, stall_s=30, max_lag_s=100)
    rollup, upkeep = health.stage("rollup"), health.stage("upkeep", carries_lines=False)
    for _ in range(12):  # busy: beats, never caught up
        clock.t += 10
        rollup.beat(caught_up=False)
        upkeep.beat(caught_up=False)
    assert health.problem() == "rollup has been behind for 120 s"
    rollup.beat(caught_up=True)
    assert health.problem() is None
    clock.t += 31
    assert health.problem() == "rollup has made no progress for 31 s"
    report = health.report()["stages"]
    assert report["rollup"]["ok"] is False and report["upkeep"]["ok"] is False


def test_a_stuck_upkeep_fails_healthz_but_does_not_close_ingress() -> None:
    """Settling only speeds reads up: lines may still be acknowledged."""
    clock = Ticks()
    health = Health(clock, stall_s=30)
    health.stage("rollup").beat()
    upkeep = health.stage("upkeep", carries_lines=False)
    clock.t += 31
    health.stage("rollup").beat()
    assert health.problem() is None
    report = health.report()
    assert report["status"] == "failing"
    assert report["problems"] == ["upkeep has made no progress for 31 s"]
    upkeep.beat()
    assert health.report()["status"] == "ok"


def test_a_write_that_keeps_failing_fails_health_after_a_grace() -> None:
    clock = Ticks()
    health = Health(clock)
    sink = health.stage("sink")
    sink.failing(OSError("database or disk is full"))
    assert health.problem() is None  # one failure is retried, not yet a verdict
    clock.t += FAILING_S
    sink.beat()
    assert (
        health.problem() == "sink has failed to write for 5 s (OSError: database or disk is full)"
    )
    sink.recovered()
    assert health.problem() is None


def test_a_closed_gate_refuses_requests_as_unavailable(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "bus")
    try:
        acceptor = LocalAcceptor(bus.producer())
        acceptor.gate = lambda: "rollup crashed"
        fut = acceptor.submit("app", "f1", [OutRecord("t", b"k", b"v")])
        with pytest.raises(BusUnavailable, match="not keeping up: rollup crashed"):
            fut.result(1)
        acceptor.gate = lambda: None
        assert acceptor.submit("app", "f1", [OutRecord("t", b"k", b"v")]).result(5) is True
    finally:
        bus.close()


# -- the pipeline of `up`, in process, with a disk that refuses writes for a while --------


def _wait(condition: Any, what: str, timeout_s: float = 30.0) -> None:
    until(condition, what, timeout_s)


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    config = replace(Config(), data_dir=tmp_path, flush_interval_s=0.05, workers=0)
    p = Pipeline(config, clock=FixedClock(FIXED_NOW_MS))
    yield p
    p.stop()


def _call(p: Pipeline, asgi: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path, **kw)

    return asyncio.run(go())


def test_stages_that_cannot_save_their_positions_are_restarted_and_count_exactly(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = pipeline.registry.create("shop")
    asgi = pipeline.http_app()
    auth = base64.b64encode(f"d:{app.drain_secret}".encode()).decode()

    def post(lines: list[str]) -> int:
        headers = {"Content-Type": "application/logplex-1", "Authorization": f"Basic {auth}"}
        body = drains.body(lines)
        return _call(pipeline, asgi, "POST", "/logs", content=body, headers=headers).status_code

    def counted() -> int:
        start, end = iso(FIXED_NOW_MS - 600_000), iso(FIXED_NOW_MS + 60_000)
        path = f"/api/v1/apps/shop/metrics/router.status?start={start}&end={end}"
        headers = {"Authorization": f"Bearer {app.api_token}"}
        got = _call(pipeline, asgi, "GET", path, headers=headers).json()
        return sum(p["total"] for series in got["series"] for p in series["points"])

    disk_full = threading.Event()
    real = pipeline.bus.store_positions

    def store_positions(group: str, positions: Any) -> None:
        if disk_full.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        real(group, positions)

    monkeypatch.setattr(pipeline.bus, "store_positions", store_positions)
    # Long enough to look at the crashed stage before it runs (and crashes) again.
    monkeypatch.setattr("drainpipe.service.pipeline.RESTART_BACKOFF_S", (3.0,))
    pipeline.start_stages()
    first = [drains.router(FIXED_NOW_MS - 60_000 + i, 5, 200) for i in range(10)]
    assert post(first) == 204
    _wait(lambda: counted() == 10, "the first lines counted")

    disk_full.set()
    assert post([drains.router(FIXED_NOW_MS - 50_000 + i, 5, 200) for i in range(5)]) == 204
    _wait(lambda: pipeline.health.problem() is not None, "the rollup's crash seen")
    health = _call(pipeline, asgi, "GET", "/healthz")
    assert health.status_code == 503
    report = health.json()
    # The rollup's commit fails, and the sink's (and the alerts'), whichever comes first.
    crashed = {n for n, st in report["stages"].items() if st["state"] == "restarting"}
    assert crashed & {"rollup", "sink"} and crashed <= {"rollup", "sink", "alerts"}, report
    assert "No space left on device" in report["problems"][0]
    refused = post([drains.router(FIXED_NOW_MS - 40_000, 5, 200)])
    assert refused == 503  # not acknowledged while a stage is down: Logplex retries it

    disk_full.clear()
    _wait(lambda: pipeline.health.problem() is None, "the rollup running again")
    stages = _call(pipeline, asgi, "GET", "/healthz").json()["stages"]
    assert all(stages[n]["restarts"] >= 1 for n in crashed)
    _wait(lambda: counted() == 15, "every acknowledged line counted, once")
    time.sleep(0.5)
    assert counted() == 15


# -- `drainpipe up` on a small disk that fills up ----------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    run = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root and mounts a small tmpfs: {run.stderr.strip()}")
        pytest.skip(f"mounting a small tmpfs needs root: {run.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _health(server: drains.Server) -> tuple[int, dict[str, Any]]:
    status, body = server.get("/healthz", None)
    assert isinstance(body, dict)
    return status, body


def test_a_full_disk_for_5_s_fails_health_then_up_recovers_every_acknowledged_line(
    small_disk: Path,
) -> None:
    app = drains.create_app(small_disk, "shop")
    server = drains.start(small_disk, None, "--flush-interval", "0.1")
    try:
        now = int(time.time() * 1000)
        start, end = now - now % 60_000 - 600_000, now + 120_000

        def counted() -> int:
            got = points(server, app, "router.status", start, end)
            return int(sum(p["total"] for p in got.values()))

        sent = 0

        def post(n: int) -> int:
            nonlocal sent
            lines = [drains.router(now - 30_000 + sent + i, 5, 200) for i in range(n)]
            code = server.post(app["drain_secret"], drains.body(lines), n)
            sent += n if code == 204 else 0
            return code

        assert post(20) == 204
        _wait(lambda: counted() == 20, "the first lines counted")
        assert post(20) == 204
        filler = _fill(small_disk)
        codes = []
        began = time.monotonic()
        while time.monotonic() - began < 5:
            codes.append(post(5))
            time.sleep(0.2)
        assert 503 in codes, codes  # nothing is acknowledged that cannot be stored
        status, report = _health(server)
        assert status == 503, report
        assert report["problems"], report
        filler.unlink()
        _wait(lambda: _health(server)[0] == 200, "/healthz ok again", 60)
        assert post(20) == 204
        _wait(lambda: counted() == sent, f"all {sent} acknowledged lines counted", 60)
        time.sleep(0.5)
        assert counted() == sent
        metrics = server.text("/metrics")
        assert 'drainpipe_stage_restarts_total{stage="rollup"}' in metrics
    finally:
        assert drains.stop(server) == 0


def test_the_embedded_log_tells_a_consumer_it_is_behind(tmp_path: Path) -> None:
    """A short poll is not proof of being caught up: the rest may be one read away."""
    bus = EmbeddedBus(tmp_path / "bus", partitions=1)
    try:
        bus.producer().send([OutRecord("t", b"k", b"v%d" % i) for i in range(10)]).result(5)
        consumer = bus.consumer("g")
        consumer.subscribe(["t"], lambda assigned: None)
        assert len(consumer.poll(4, 1.0)) == 4 and consumer.behind
        assert len(consumer.poll(100, 1.0)) == 6 and not consumer.behind
    finally:
        bus.close()
