"""drainpipe simulate: deterministic, parseable, realistic traffic; framing; POSTs like Logplex."""

from __future__ import annotations

import http.server
import io
import itertools
import json
import math
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from drainpipe import cli
from drainpipe.ingest.framing import split_frames
from drainpipe.ingest.parse import parse_message
from drainpipe.model import DynoLoad, DynoMemory, PlatformEvent, RouterRequest
from drainpipe.tools.simulate import Framer, Generator, SimLine, SimulateError, Workload, events
from drainpipe.tools.simulate.dynos import Dyno
from drainpipe.tools.simulate.framing import (
    DrainBody,
    drain_token,
    headers,
    record_decoder,
    record_line,
)
from drainpipe.tools.simulate.post import Poster, Target, basic_auth, parse_url
from drainpipe.tools.simulate.progress import Progress
from drainpipe.tools.simulate.traffic import ERRORS, STATUSES
from tests.support import drains

T0_US = 1_795_255_200_000_000  # 2026-11-21T10:00:00Z
KIND = {RouterRequest: "router", DynoMemory: "memory", DynoLoad: "load", PlatformEvent: "event"}


def lines(n: int, **kw: object) -> list[SimLine]:
    workload = Workload(**{"start_us": T0_US, **kw})  # type: ignore[arg-type]
    return list(itertools.islice(Generator(workload).lines(), n))


def bodies(generated: list[SimLine], apps: int, max_lines: int = 500) -> list[DrainBody]:
    framer = Framer(apps, "frames", max_lines)
    out = [b for line in generated for b in framer.add(line)]
    return out + framer.flush()


def test_the_same_seed_gives_the_same_traffic_and_another_seed_other_traffic() -> None:
    one = lines(20_000, apps=3, seed=7, event_interval_s=30)
    assert one == lines(20_000, apps=3, seed=7, event_interval_s=30)
    assert [b.payload() for b in bodies(one, 3)] == [b.payload() for b in bodies(one, 3)]
    other = lines(20_000, apps=3, seed=8, event_interval_s=30)
    assert [x.text for x in one[:50]] != [x.text for x in other[:50]]


def test_every_line_parses_to_the_kind_it_was_generated_as() -> None:
    generated = lines(60_000, apps=2, rate=100, event_interval_s=20)
    seen: Counter[str] = Counter()
    event_kinds: set[str] = set()
    for line in generated:
        rec = parse_message(line.text.encode())
        assert KIND.get(type(rec)) == line.kind, line.text
        assert isinstance(rec, RouterRequest | DynoMemory | DynoLoad | PlatformEvent)
        assert rec.ts_ms == line.t_us // 1000
        seen[line.kind] += 1
        if isinstance(rec, PlatformEvent):
            event_kinds.add(rec.kind)
    assert set(seen) == {"router", "memory", "load", "event"}
    # releases, deploys, config, scaling, restarts, state changes, crashes, builds
    assert {"release", "deploy", "config", "scale", "restart", "state", "crash", "build"} <= (
        event_kinds
    )
    assert all(a.t_us <= b.t_us for a, b in itertools.pairwise(generated))
    span_s = (generated[-1].t_us - generated[0].t_us) / 1e6
    per_cluster = events.mean_lines(4)  # 2 process types x 2 dynos
    assert seen["event"] / span_s == pytest.approx(2 * per_cluster / 20, rel=0.5)


def test_a_leaking_dyno_swaps_over_its_quota_and_logs_r14_until_restarted() -> None:
    generated = lines(25_000, apps=2, rate=5, seed=3, event_interval_s=1e9)  # 1.4 hours
    r14 = [x for x in generated if "Error R14 (Memory quota exceeded)" in x.text]
    assert r14
    swapped = [
        rec
        for x in generated
        if x.kind == "memory"
        and isinstance(rec := parse_message(x.text.encode()), DynoMemory)
        and (rec.memory_swap or 0) > 0
    ]
    assert swapped and all(
        r.memory_rss == r.memory_quota and r.memory_total is not None for r in swapped
    )
    restarted = [x for x in generated if x.text.endswith(" - Restarting\n")]
    assert restarted and restarted[0].t_us > r14[0].t_us


def test_dyno_memory_grows_past_the_quota_when_it_leaks() -> None:
    import random

    rng = random.Random(1)
    dyno = Dyno(app_number=1234, process_type="web", index=1, quota_mb=512.0, busy=1.0)
    dyno.reboot(rng)
    dyno.leak_mb = 20.0
    for _ in range(40):
        dyno.sample(rng)
    assert dyno.over_quota > 0
    dyno.reboot(rng)
    assert dyno.over_quota == 0 and dyno.leaked_mb == 0


def test_bodies_frame_round_trip_and_carry_logplex_headers() -> None:
    generated = lines(12_000, apps=3, rate=2000, event_interval_s=10)
    out = bodies(generated, 3, max_lines=300)
    assert sum(b.count for b in out) == len(generated)
    by_app: dict[int, list[str]] = defaultdict(list)
    for body in out:
        assert 1 <= body.count <= 300
        frames = split_frames(body.payload())
        assert [f.decode() for f in frames] == body.lines
        assert re.fullmatch(r"[0-9a-f]{32}", body.frame_id)
        h = headers(body, drain_token(1, body.app))
        assert h["Logplex-Msg-Count"] == str(len(frames))
        assert h["Content-Type"] == "application/logplex-1"
        assert re.fullmatch(r"d\.[0-9a-f-]{36}", h["Logplex-Drain-Token"])
        assert h["User-Agent"].startswith("Logplex/v")
        by_app[body.app].extend(body.lines)
        rec = record_decoder.decode(record_line(body, f"sim-{body.app + 1}", "d.x"))
        assert rec.body.encode() == body.payload() and rec.msg_count == body.count
    for app, texts in by_app.items():  # each app's lines, in order, in its own bodies
        assert texts == [x.text for x in generated if x.app == app]
    assert len({b.frame_id for b in out}) == len(out)


def test_a_quiet_app_gets_its_body_within_a_simulated_second() -> None:
    generated = lines(20_000, apps=3, rate=500)
    for body in bodies(generated, 3):
        assert body.count == 500 or body.last_us - body.first_us <= 1_250_000


def test_rates_and_shares_stay_within_tolerance_over_100k_lines() -> None:
    rate, apps, dynos = 1000.0, 2, 2
    generated = lines(100_000, apps=apps, dynos=dynos, rate=rate, seed=11)
    span_s = (generated[-1].t_us - generated[0].t_us) / 1e6
    assert len(generated) / span_s == pytest.approx(rate, rel=0.02)
    # status, code and service of every router line (the parser's agreement is tested above)
    fields = re.compile(r"(?:code=(H\d+) .*)?service=(\d*)(?:ms)? status=(\d+)")
    router = [fields.search(x.text).groups() for x in generated if x.kind == "router"]  # type: ignore[union-attr]
    n = len(router)

    def within(observed: int, share: float) -> None:  # 5 standard deviations of a binomial
        expected = n * share
        assert abs(observed - expected) <= 5 * math.sqrt(expected * (1 - share)) + 2, (
            observed,
            expected,
        )

    codes = Counter(code for code, _, _ in router)
    for code, share, *_ in ERRORS:
        within(codes[code], share)
    plain = [(int(service), int(status)) for code, service, status in router if code is None]
    classes = Counter(f"{status // 100}xx" for _, status in plain)
    for cls in ("2xx", "3xx", "4xx", "5xx"):
        share = sum(s for status, s in STATUSES if f"{status // 100}xx" == cls)
        within(classes[cls], share * len(plain) / n)
    services = sorted(service for service, _ in plain)
    p50, p99 = services[len(services) // 2], services[int(len(services) * 0.99)]
    assert 15 <= p50 <= 150 and p99 > 8 * p50  # log-normal with a long tail
    assert max(services) < 30_000
    assert all(s == "30000" and st == "503" for code, s, st in router if code == "H12")
    # Runtime metrics: every dyno, every 20 s (give or take 0.2 s), a load and a memory line.
    samples: dict[tuple[int, str], list[int]] = defaultdict(list)
    for x in generated:
        if x.kind == "memory":
            samples[(x.app, x.text.split(" ")[4])].append(x.t_us)
    assert len(samples) == apps * dynos * 2
    for times in samples.values():
        assert len(times) >= span_s // 20 - 1
        assert all(19.5e6 <= b - a <= 20.5e6 for a, b in itertools.pairwise(times))
    kinds = Counter(x.kind for x in generated)
    assert kinds["memory"] == kinds["load"]
    assert kinds["event"] < 0.01 * len(generated)


def test_a_rate_below_the_runtime_metrics_floor_is_refused_with_what_to_change() -> None:
    with pytest.raises(SimulateError, match=r"raise --rate above .* or lower --apps/--dynos"):
        Generator(Workload(start_us=T0_US, rate=1.0, apps=5, dynos=4))


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers each frame id with the statuses in `plan` in turn, then 204."""

    plan: ClassVar[dict[str, list[int]]] = {}
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert len(split_frames(body)) == int(self.headers["Logplex-Msg-Count"])
        frame = self.headers["Logplex-Frame-Id"]
        self.seen.append((frame, self.headers["Authorization"]))
        todo = self.plan.get(frame, [])
        self.send_response(todo.pop(0) if todo else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://drain:s3cret@127.0.0.1:{server.server_address[1]}/logs"
    server.shutdown()
    server.server_close()


def test_posting_retries_429_and_5xx_three_times_and_drops_other_4xx(flaky: str) -> None:
    body = bodies(lines(40, apps=1, rate=1000), 1, max_lines=10)
    _Flaky.seen = []
    _Flaky.plan = {
        body[0].frame_id: [503, 429],  # third try lands
        body[1].frame_id: [500, 502, 503],  # three tries, dropped
        body[2].frame_id: [400],  # dropped at once
    }
    target = parse_url(flaky)
    assert target == Target("http", "127.0.0.1", target.port, "/logs", "drain", "s3cret")
    poster = Poster(target, [basic_auth("drain", "s3cret")], ["d.x"], connections=2)
    stats = poster.run(
        body, lambda b: 0.0, Progress("t", io.StringIO()), sum(b.count for b in body)
    )
    tries = Counter(frame for frame, _ in _Flaky.seen)
    assert tries[body[0].frame_id] == 3 and tries[body[1].frame_id] == 3
    assert tries[body[2].frame_id] == 1 and tries[body[3].frame_id] == 1
    assert stats.acked_bodies == len(body) - 2 and stats.dropped_bodies == 2
    assert stats.answers == Counter({"503": 2, "429": 1, "500": 1, "502": 1, "400": 1})
    assert {auth for _, auth in _Flaky.seen} == {basic_auth("drain", "s3cret")}


def test_a_receiver_away_for_seconds_loses_nothing_as_with_logplex() -> None:
    """Nothing listens for the first 1.5 s (a restart): the frames are held and the
    connection retried with backoff, not dropped after three quick tries."""
    port = drains.free_port()
    body = bodies(lines(40, apps=1, rate=1000), 1, max_lines=10)
    _Flaky.seen, _Flaky.plan = [], {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Flaky, bind_and_activate=False)
    server.allow_reuse_address = True

    def open_later() -> None:
        server.server_bind()
        server.server_activate()
        threading.Thread(target=server.serve_forever, daemon=True).start()

    later = threading.Timer(1.5, open_later)
    later.start()
    try:
        target = parse_url(f"http://drain:s3cret@127.0.0.1:{port}/logs")
        poster = Poster(target, [basic_auth("drain", "s3cret")], ["d.x"], connections=2)
        stats = poster.run(
            body, lambda b: 0.0, Progress("t", io.StringIO()), sum(b.count for b in body)
        )
    finally:
        later.join()
        server.shutdown()
        server.server_close()
    assert stats.acked_bodies == len(body) and stats.dropped_bodies == 0
    assert stats.reconnects > 0 and stats.answers == Counter()
    assert {frame for frame, _ in _Flaky.seen} == {b.frame_id for b in body}


def test_simulate_posts_to_drainpipe_up_which_shows_exactly_the_generated_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = drains.start(tmp_path, None, "--flush-interval", "0.2")
    try:
        start = datetime.now(UTC).replace(microsecond=0)
        argv = ["simulate", "--url", f"{server.url}/logs", "--create-apps"]
        argv += ["--data-dir", str(tmp_path), "--apps", "2", "--rate", "4000", "--duration", "2"]
        argv += ["--start", start.isoformat(), "--seed", "5", "--connections", "3"]
        assert cli.main(argv) == 0
        out, _ = capsys.readouterr()
        created = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert [a["name"] for a in created] == ["sim-1", "sim-2"]
        report = out.splitlines()[-1]  # on stdout, after the apps; progress is on stderr
        assert "8,000 of 8,000 lines acknowledged" in report and "0 reconnects" in report, out
        workload = Workload(
            start_us=int(start.timestamp() * 1e6),
            rate=4000,
            apps=2,
            seed=5,
            app_names=("sim-1", "sim-2"),
        )
        expected: Counter[tuple[int, int]] = Counter()
        for line in itertools.islice(Generator(workload).lines(), 8000):
            if line.kind == "router":
                expected[(line.app, line.t_us // 60_000_000 * 60_000)] += 1
        lo = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start.timestamp() - 120))
        hi = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start.timestamp() + 180))
        for i, app in enumerate(created):
            want = {m: n for (a, m), n in expected.items() if a == i}
            deadline = time.monotonic() + 20
            while True:
                code, body = server.get(
                    f"/api/v1/apps/{app['name']}/metrics/router.status?start={lo}&end={hi}",
                    app["api_token"],
                )
                assert code == 200, body
                assert isinstance(body, dict)
                got = {
                    int(
                        datetime.fromisoformat(p["t"].replace("Z", "+00:00")).timestamp() * 1000
                    ): p["total"]
                    for s in body["series"]
                    for p in s["points"]
                }
                if got == want or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert got == want
    finally:
        assert drains.stop(server) == 0, server.log_path.read_text()[-3000:]


def test_simulate_refuses_one_secret_for_several_apps(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--url", "http://127.0.0.1:9/logs", "--secret", "x", "--apps", "2"]
    assert cli.main(argv) == 2
    assert "a drain secret belongs to one app" in capsys.readouterr().err


def test_create_apps_goes_to_the_postgres_registry_with_postgres(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pg_dsn_factory: Callable[[], str],
) -> None:
    from drainpipe.store.apps import postgres_registry
    from tests.support.roles import url_of

    url = url_of(pg_dsn_factory())
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("DRAINPIPE_SHARDS", raising=False)
    argv = ["simulate", "--out", str(tmp_path / "out"), "--create-apps", "--postgres"]
    assert cli.main([*argv, "--apps", "2", "--lines", "200", "--rate", "1000"]) == 0
    out, _ = capsys.readouterr()
    made = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    registry = postgres_registry(url)
    try:
        for app in made:
            assert registry.by_drain_secret(app["drain_secret"]) == registry.by_name(app["name"])
        assert [a["name"] for a in made] == ["sim-1", "sim-2"]
    finally:
        registry.close()


def test_progress_off_a_terminal_is_a_plain_line_every_ten_seconds() -> None:
    now = [100.0]
    out = io.StringIO()
    progress = Progress("simulate", out, live=False, clock=lambda: now[0])
    for i in range(250):  # 25 s in steps of 0.1 s
        now[0] += 0.1
        progress.update(i * 100, i / 250)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("simulate  [") for line in lines)
    assert "\r" not in out.getvalue() and "ETA" in lines[0]
    progress.finish("simulate: done")
    assert out.getvalue().splitlines()[-1] == "simulate: done"
