"""kill -9 at random moments: nothing acknowledged is lost, nothing is counted twice."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from drainpipe.sketch import RELATIVE_ACCURACY
from tests import drains
from tests.test_end_to_end import iso, nearest_rank, points

MIN = 60_000
BODIES = 300
KILLS = 12


def test_sigkill_at_random_moments_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(99)
    app = drains.create_app(tmp_path, "shop")
    port = drains.free_port()
    server = drains.start(tmp_path, port, "--flush-interval", "0.1")
    now = int(time.time() * 1000)
    base = now - now % MIN - 30 * MIN
    expected: dict[int, list[float]] = defaultdict(list)
    bodies: list[tuple[str, bytes, int]] = []
    for i in range(BODIES):  # event time moves forward 2 s per body: windows close as it goes
        lines = []
        for _ in range(40):
            ms = base + i * 2000 + rng.randrange(0, 2000)
            service = float(max(1, int(rng.lognormvariate(3.0, 1.2))))
            lines.append(drains.router(ms, int(service), rng.choice([200, 200, 304, 500])))
            expected[ms - ms % MIN].append(service)
        bodies.append((f"{i:032x}", drains.body(lines), len(lines)))

    todo = list(reversed(bodies))
    lock = threading.Lock()
    deadline = time.monotonic() + 240
    failures: list[str] = []

    def poster() -> None:
        while time.monotonic() < deadline:
            with lock:
                if not todo:
                    return
                frame_id, payload, count = todo.pop()
            while time.monotonic() < deadline:  # like Logplex: retry the same frame
                try:
                    code = server.post(
                        app["drain_secret"], payload, count, {"Logplex-Frame-Id": frame_id}
                    )
                except OSError:
                    code = 0
                if code == 204:
                    break
                if code not in (0, 503):
                    failures.append(f"frame {frame_id}: HTTP {code}")
                    return
                time.sleep(0.02)

    threads = [threading.Thread(target=poster) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.1, 0.8))
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        server = drains.start(tmp_path, port, "--flush-interval", "0.1")
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic()))
    assert not failures and not todo, failures or f"{len(todo)} bodies never accepted"

    total = sum(len(v) for v in expected.values())
    start, end = base - 10 * MIN, base + 30 * MIN
    seen = -1
    wait_until = time.monotonic() + 30
    while time.monotonic() < wait_until:
        seen = sum(p["total"] for p in points(server, app, "router.status", start, end).values())
        if seen >= total:
            break
        time.sleep(0.2)
    time.sleep(1)  # anything counted twice would show up now
    lat = points(server, app, "router.latency", start, end)
    assert set(lat) == {("web", iso(m)) for m in expected}
    for m, values in expected.items():
        p = lat[("web", iso(m))]
        assert p["count"] == len(values), (iso(m), p["count"], len(values))
        assert p["min"] == min(values) and p["max"] == max(values)
        assert abs(p["mean"] - float(np.mean(values))) <= 1e-9 * p["mean"]
        truth = nearest_rank(values, 0.99)
        assert abs(p["p99"] - truth) <= RELATIVE_ACCURACY * truth * (1 + 1e-9)
    # Restarts replay rows whose windows had closed; those were counted, not late.
    assert 'late_dropped_total{family="router"}' not in server.text("/metrics")
    assert drains.stop(server) == 0


def worker_pids(owner_pid: int) -> list[int]:
    children = Path(f"/proc/{owner_pid}/task/{owner_pid}/children").read_text().split()
    return [int(p) for p in children]


def test_a_killed_http_worker_is_replaced_and_nothing_acknowledged_is_lost(tmp_path: Path) -> None:
    app = drains.create_app(tmp_path, "shop")
    server = drains.start(tmp_path, None, "--flush-interval", "0.1", "--workers", "2")
    now = int(time.time() * 1000)
    base = now - now % MIN - 5 * MIN
    before = worker_pids(server.proc.pid)
    assert len(before) == 2
    sent = 0
    for i in range(60):
        if i == 20:
            os.kill(before[0], signal.SIGKILL)
        payload = drains.body([drains.router(base + i * 100, 7, 200)])
        for _ in range(100):  # a connection to the dead worker fails; Logplex would retry
            try:
                code = server.post(
                    app["drain_secret"], payload, 1, {"Logplex-Frame-Id": f"{i:032x}"}
                )
            except OSError:
                code = 0
            if code == 204:
                sent += 1
                break
            time.sleep(0.05)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = worker_pids(server.proc.pid)  # a killed worker stays listed until reaped
        if len(pids) == 2 and before[0] not in pids:
            break
        time.sleep(0.1)
    after = worker_pids(server.proc.pid)
    assert len(after) == 2 and before[0] not in after
    deadline = time.monotonic() + 10
    total = -1
    while time.monotonic() < deadline and total != sent:
        pts = points(server, app, "router.status", base - MIN, base + 5 * MIN)
        total = sum(p["total"] for p in pts.values())
        time.sleep(0.1)
    assert sent == 60 and total == 60
    assert drains.stop(server) == 0
