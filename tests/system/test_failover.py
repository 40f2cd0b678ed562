"""A rollup member killed with kill -9 on the real broker, with the consumers' shipped
session settings: the survivor reads the dead member's partitions again and keeps
reading its own through the rebalance, a restarted member takes its share back, and
nothing acknowledged is lost or counted twice.

The times it takes are reported (`record_property`; the run's summary prints them), not
asserted: `bench.failover` measures them, and BENCHMARKS.md has the figures. The waits
below are bounds on a hang, far above them."""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from drainpipe.model import ROUTER, partition_for, partition_key
from tests.support import drains, members
from tests.support.roles import Deployment, Roles, wait_http
from tests.support.waiting import until
from tests.system.test_end_to_end import iso, points

MIN = 60_000
PARTITIONS = 4  # of each topic, as the deployment fixture makes them
RAW = 4 * PARTITIONS  # the rollup's partitions: four raw topics
PACE_S = 0.1  # between drain bodies
HANG_S = 60.0


def covering_process_types(owner: str) -> dict[str, int]:
    """Process types whose router lines of `owner` fill every router partition."""
    found: dict[str, int] = {}
    for i in range(200):
        pt = f"proc{i}"
        p = partition_for(partition_key(owner, pt), PARTITIONS)
        if p not in found.values():
            found[pt] = p
        if len(found) == PARTITIONS:
            return found
    raise AssertionError("no process types cover every partition")


class Traffic:
    """Drain bodies of router lines for each process type, one every PACE_S, dated now;
    each retried with its frame id until acknowledged, as Logplex does."""

    def __init__(self, ingress: drains.Server, secret: str, process_types: list[str]) -> None:
        self.ingress, self.secret, self.process_types = ingress, secret, process_types
        self.service: dict[tuple[str, int], list[float]] = defaultdict(list)  # acknowledged
        self.acked: dict[str, int] = defaultdict(int)  # lines, by process type
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        i = 0
        deadline = time.monotonic() + 4 * HANG_S
        while not self.stop.is_set() and time.monotonic() < deadline:
            now = int(time.time() * 1000)
            lines, sent = [], []
            for n, pt in enumerate(self.process_types):
                for k in range(3):
                    service = float(1 + (i * 7 + n * 3 + k) % 97)
                    lines.append(drains.router(now - 1000, int(service), 200, dyno=f"{pt}.1"))
                    sent.append((pt, now - 1000 - (now - 1000) % MIN, service))
            payload = drains.body(lines)
            code = self.ingress.post_retried(
                self.secret, payload, len(lines), f"failover-{i:08d}", deadline
            )
            if code != 204:
                self.failures.append(f"body {i}: HTTP {code}")
                return
            with self.lock:
                for pt, minute, service in sent:
                    self.service[(pt, minute)].append(service)
                    self.acked[pt] += 1
            i += 1
            self.stop.wait(PACE_S)

    def acked_of(self, process_types: set[str]) -> int:
        with self.lock:
            return sum(n for pt, n in self.acked.items() if pt in process_types)

    def finish(self) -> dict[tuple[str, int], list[float]]:
        self.stop.set()
        self.thread.join(HANG_S)
        assert not self.failures, self.failures
        return dict(self.service)


def counted(api: drains.Server, app: dict[str, str], process_types: set[str]) -> int:
    now = int(time.time() * 1000)
    pts = points(api, app, "router.status", now - 10 * MIN, now + 2 * MIN)
    return sum(p["total"] for (pt, _), p in pts.items() if pt in process_types)


def rollup_logs(roles: Roles) -> str:
    """The rollups' log tails, for a failed wait."""
    return "\n".join(
        roles.log(name)[-3000:] for name in ("rollup-a", "rollup-b", "rollup-a2")
        if (roles.tmp / f"{name}.log").exists()
    )  # fmt: skip


def test_a_killed_rollup_member_s_partitions_are_read_again_and_nothing_is_lost(
    deployment: Deployment, record_property: Callable[[str, object], None]
) -> None:
    roles, _, _, ingress_port, api_port = deployment
    # The shipped session timeout and heartbeat, not the tests' short ones.
    roles.env.pop("DRAINPIPE_KAFKA_CONFIG", None)
    app = roles.create_app("shop")
    by_pt = covering_process_types(app["id"])
    roles.start("ingress", "--port", str(ingress_port))
    roles.start("api", "--port", str(api_port))
    roles.start("sink", "--port", str(drains.free_port()))
    logs = {name: roles.tmp / f"{name}.log" for name in ("rollup-a", "rollup-b", "rollup-a2")}
    for name in ("rollup-a", "rollup-b"):
        roles.start("rollup", "--port", str(drains.free_port()), name=name)
    ingress, api = (
        drains.Server(f"http://127.0.0.1:{port}", roles.tmp, roles.procs[role], roles.tmp)
        for role, port in (("ingress", ingress_port), ("api", api_port))
    )
    for server in (ingress, api):
        wait_http(server.url, roles)

    def wait(condition: Callable[[], bool], what: str) -> None:
        until(condition, what, HANG_S, lambda: rollup_logs(roles))

    def halves(a: str, b: str) -> bool:
        return members.holding(logs[a]) == members.holding(logs[b]) == RAW // 2

    wait(lambda: halves("rollup-a", "rollup-b"), "the two members share the partitions")
    traffic = Traffic(ingress, app["drain_secret"], sorted(by_pt))
    try:
        # Kill the member that reads a router partition (one of them does, both may).
        held = {n: members.changes(logs[n])[-1].held for n in ("rollup-a", "rollup-b")}
        victim = "rollup-a" if any(t == ROUTER.topic for t, _ in held["rollup-a"]) else "rollup-b"
        survivor = "rollup-b" if victim == "rollup-a" else "rollup-a"
        orphaned = {pt for pt, p in by_pt.items() if (ROUTER.topic, p) in held[victim]}
        assert orphaned, held
        time.sleep(2.0)  # traffic flows through both members
        roles.procs[victim].send_signal(signal.SIGKILL)
        killed_at = time.time()
        assert roles.procs[victim].wait(10) == -signal.SIGKILL
        time.sleep(0.5)
        owed = traffic.acked_of(orphaned)  # lines the dead member's partitions must show

        wait(lambda: members.holding(logs[survivor]) == RAW, "the survivor holds every partition")
        after = [c for c in members.changes(logs[survivor]) if c.at >= killed_at - 0.2]
        takeover_s = after[-1].at - killed_at
        # Cooperative assignment: the survivor never let go of its own partitions.
        assert all(c.held >= held[survivor] for c in after), after
        wait(lambda: counted(api, app, orphaned) >= owed, "lines sent after the kill are counted")
        counted_s = time.time() - killed_at

        # A new member takes half back; the survivor keeps the rest meanwhile.
        started = time.time()
        roles.start("rollup", "--port", str(drains.free_port()), name="rollup-a2")
        wait(lambda: halves("rollup-a2", survivor), "the restarted member takes its share")
        rejoin_s = members.changes(logs["rollup-a2"])[-1].at - started
        # The survivor kept the half it still holds through both rebalances of the join.
        kept = members.changes(logs[survivor])[-1].held
        assert all(c.held >= kept for c in members.changes(logs[survivor]) if c.at >= started)
        time.sleep(2.0)  # traffic flows through both members again
    finally:
        expected = traffic.finish()

    for name, value in (("takeover_s", takeover_s), ("counted_s", counted_s),
                        ("rejoin_s", rejoin_s)):  # fmt: skip
        record_property(name, round(value, 1))
    total = sum(len(v) for v in expected.values())
    wait(lambda: counted(api, app, set(by_pt)) >= total, "every line is counted")
    time.sleep(1.0)  # anything counted twice would show up now
    start = min(m for _, m in expected) - MIN
    end = max(m for _, m in expected) + 2 * MIN
    lat = points(api, app, "router.latency", start, end)
    assert set(lat) == {(pt, iso(m)) for pt, m in expected}
    for (pt, m), values in expected.items():
        p = lat[(pt, iso(m))]
        assert (p["count"], p["min"], p["max"]) == (len(values), min(values), max(values))
    for name in ("rollup-a2", survivor, "sink", "ingress"):
        assert roles.procs[name].poll() is None, roles.log(name)[-2000:]
