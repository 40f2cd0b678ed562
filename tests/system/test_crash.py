"""kill -9 at random moments: nothing acknowledged is lost, nothing is counted twice."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from drainpipe.sketch import RELATIVE_ACCURACY
from tests.support import drains
from tests.support.roles import Deployment, wait_http
from tests.system.test_end_to_end import iso, nearest_rank, points

MIN = 60_000
# The soak (BENCHMARKS.md) raises the kills; the traffic grows with them, so it flows
# through every kill.
KILLS = int(os.environ.get("DRAINPIPE_CRASH_KILLS", "12"))
ROLE_KILLS = int(os.environ.get("DRAINPIPE_CRASH_ROLE_KILLS", "2"))  # per role
BODIES_PER_KILL = 25


Bodies = list[tuple[str, bytes, int]]  # (Logplex-Frame-Id, body, lines)


def start_of(count: int) -> int:
    """The first minute of `count` bodies of traffic that ends before now."""
    now = int(time.time() * 1000)
    return now - now % MIN - (count * 2000 // MIN + 5) * MIN


def traffic(rng: random.Random, base: int, count: int) -> tuple[Bodies, dict[int, list[float]]]:
    """`count` drain bodies of 40 router lines whose event time moves forward 2 s per
    body (windows close as it goes), and the service times expected per minute."""
    expected: dict[int, list[float]] = defaultdict(list)
    bodies: Bodies = []
    for i in range(count):
        lines = []
        for _ in range(40):
            ms = base + i * 2000 + rng.randrange(0, 2000)
            service = float(max(1, int(rng.lognormvariate(3.0, 1.2))))
            lines.append(drains.router(ms, int(service), rng.choice([200, 200, 304, 500])))
            expected[ms - ms % MIN].append(service)
        bodies.append((f"{i:032x}", drains.body(lines), len(lines)))
    return bodies, expected


class Posting:
    """Posts every body from two threads, each retried like Logplex retries (same frame
    id) until it is acknowledged; `server()` is whichever server is up at the moment.
    `finish` waits, and fails if a body got an answer other than 204 or 503."""

    def __init__(
        self,
        server: Callable[[], drains.Server],
        secret: str,
        bodies: Bodies,
        budget_s: float = 240,
    ) -> None:
        self.server, self.secret = server, secret
        self.todo = list(reversed(bodies))
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + budget_s
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._post) for _ in range(2)]
        for t in self.threads:
            t.start()

    def _post(self) -> None:
        while time.monotonic() < self.deadline:
            with self.lock:
                if not self.todo:
                    return
                frame_id, payload, count = self.todo.pop()
            # server() is asked again each second: a killed ingress comes back as another.
            code = 0
            while code == 0 and time.monotonic() < self.deadline:
                limit = min(self.deadline, time.monotonic() + 1.0)
                code = self.server().post_retried(self.secret, payload, count, frame_id, limit)
            if code != 204:
                self.failures.append(f"frame {frame_id}: HTTP {code}")
                return

    def finish(self) -> None:
        for t in self.threads:
            t.join(max(1.0, self.deadline - time.monotonic()))
        assert not self.failures and not self.todo, (
            self.failures or f"{len(self.todo)} bodies never accepted"
        )


def counted_exactly(
    api: drains.Server, app: dict[str, str], base: int, expected: dict[int, list[float]]
) -> None:
    """The API's per-minute latency equals the recomputation of every line acknowledged."""
    total = sum(len(v) for v in expected.values())
    start, end = base - 10 * MIN, max(expected) + 10 * MIN
    seen = -1
    wait_until = time.monotonic() + 60
    while time.monotonic() < wait_until:
        seen = sum(p["total"] for p in points(api, app, "router.status", start, end).values())
        if seen >= total:
            break
        time.sleep(0.2)
    time.sleep(1)  # anything counted twice would show up now
    lat = points(api, app, "router.latency", start, end)
    assert set(lat) == {("web", iso(m)) for m in expected}
    for m, values in expected.items():
        p = lat[("web", iso(m))]
        assert p["count"] == len(values), (iso(m), p["count"], len(values))
        assert p["min"] == min(values) and p["max"] == max(values)
        assert abs(p["mean"] - float(np.mean(values))) <= 1e-9 * p["mean"]
        truth = nearest_rank(values, 0.99)
        assert abs(p["p99"] - truth) <= RELATIVE_ACCURACY * truth * (1 + 1e-9)


def test_sigkill_at_random_moments_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(99)
    app = drains.create_app(tmp_path, "shop")
    port = drains.free_port()
    server = drains.start(tmp_path, port, "--flush-interval", "0.1")
    count = BODIES_PER_KILL * KILLS
    base = start_of(count)
    bodies, expected = traffic(rng, base, count)
    posting = Posting(lambda: server, app["drain_secret"], bodies)
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.1, 0.8))
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        server = drains.start(tmp_path, port, "--flush-interval", "0.1")
    posting.finish()
    counted_exactly(server, app, base, expected)
    # Restarts replay rows whose windows had closed; those were counted, not late.
    assert 'late_dropped_total{family="router"}' not in server.text("/metrics")
    assert drains.stop(server) == 0


def worker_pids(primary_pid: int) -> list[int]:
    children = Path(f"/proc/{primary_pid}/task/{primary_pid}/children").read_text().split()
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


def test_sigkill_of_every_scale_out_role_loses_nothing_and_counts_nothing_twice(
    deployment: Deployment,
) -> None:
    """Each role is killed at random moments while traffic flows and started again; the
    store then equals the recomputation of every acknowledged line. A frame stored
    before ingress died and sent again after it restarted is not stored twice."""
    rng = random.Random(7)
    roles, _, _, ingress_port, api_port = deployment
    app = roles.create_app("shop")
    ingress, api = roles.start_all(ingress_port, api_port)
    consumers = ["rollup", "sink", "retry"]
    count = BODIES_PER_KILL * (len(consumers) + 1) * ROLE_KILLS + 50
    base = start_of(count)
    bodies, expected = traffic(rng, base, count)
    posting = Posting(lambda: ingress, app["drain_secret"], bodies)
    for role in [*consumers, "ingress"] * ROLE_KILLS:
        time.sleep(rng.uniform(0.2, 1.5))
        roles.procs[role].send_signal(signal.SIGKILL)
        assert roles.procs[role].wait(10) == -signal.SIGKILL
        if role == "ingress":
            roles.start(role, "--port", str(ingress_port))
        else:
            roles.start(role)
    posting.finish()
    # The newest acknowledged frame, as Logplex would resend it had the 204 been lost.
    roles.procs["ingress"].send_signal(signal.SIGKILL)
    roles.procs["ingress"].wait(10)
    roles.start("ingress", "--port", str(ingress_port))
    wait_http(ingress.url, roles)
    for frame_id, payload, n in (bodies[-1], bodies[0]):
        code = ingress.post(app["drain_secret"], payload, n, {"Logplex-Frame-Id": frame_id})
        assert code == 204
    counted_exactly(api, app, base, expected)
    for role in [*consumers, "ingress"]:
        assert roles.procs[role].poll() is None, roles.log(role)[-2000:]
