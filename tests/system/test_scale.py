"""The scale-out deployment end to end: roles as processes, a Kafka-protocol broker, and
two PostgreSQL shards; the sink is killed mid-run and one shard goes away for a while."""

from __future__ import annotations

import signal
import time
from collections import defaultdict

import pytest

from drainpipe.store.shards import ShardRing
from tests.support import drains
from tests.support.roles import Deployment, post_until_accepted
from tests.system.test_end_to_end import Point, iso, points

MIN = 60_000
CANDIDATE_TYPES = ("web", "worker", "clock", "mailer", "scheduler", "search", "importer")


def test_roles_on_kafka_and_two_shards_survive_a_sink_kill_and_a_shard_outage(
    deployment: Deployment,
) -> None:
    roles, cluster, shards, ingress_port, api_port = deployment
    apps = [roles.create_app(name) for name in ("shop", "blog")]
    ids = {a["name"]: a["id"] for a in apps}
    ring = ShardRing(len(shards))
    types = []
    for pt in CANDIDATE_TYPES:  # enough process types that every shard holds some series
        types.append(pt)
        if (
            len({ring.shard_for(ids[a["name"]], t) for a in apps for t in types}) == 2
            and len(types) >= 3
        ):
            break
    assert len({ring.shard_for(ids[a["name"]], t) for a in apps for t in types}) == 2

    ingress, api = roles.start_all(ingress_port, api_port)

    now = int(time.time() * 1000)
    base = now - now % MIN - 20 * MIN
    expected: dict[tuple[str, str, int], list[float]] = defaultdict(list)

    def post_phase(phase: int) -> None:
        for a in apps:
            lines = []
            for k in range(40):
                ms = base + phase * 2 * MIN + k * 1500
                for pt in types:
                    total = 100.0 + phase * 10 + k
                    lines.append(drains.memory(ms, f"{pt}.1", total, total * 0.9, 0.0, 512.0))
                    expected[(a["name"], pt, ms - ms % MIN)].append(total)
            for i in range(0, len(lines), 100):
                code = post_until_accepted(ingress, a["drain_secret"], lines[i : i + 100])
                assert code == 204, roles.log("ingress")[-2000:]

    post_phase(0)
    time.sleep(1.5)
    roles.procs["sink"].send_signal(signal.SIGKILL)  # mid-run, possibly between write and commit
    roles.procs["sink"].wait(10)
    post_phase(1)
    roles.start("sink")
    time.sleep(1.5)

    cluster.stop()  # shard B goes away: its writes park in RETRY, shard A's keep landing
    post_phase(2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "parked_in_retry" not in roles.log("sink"):
        time.sleep(0.2)
    assert "parked_in_retry" in roles.log("sink"), roles.log("sink")[-2000:]
    cluster.start()

    start, end = base - 5 * MIN, base + 10 * MIN
    want = {(name, pt, iso(m)): values for (name, pt, m), values in expected.items()}
    deadline = time.monotonic() + 90
    got: dict[tuple[str, str, str], Point] = {}
    while time.monotonic() < deadline:
        got = {}
        for a in apps:
            for (pt, t), p in points(api, a, "dyno.memory", start, end).items():
                got[(a["name"], pt, t)] = p
        if set(got) == set(want) and all(
            got[k]["memory_total_max"] == max(v) for k, v in want.items()
        ):
            break
        time.sleep(0.5)
    assert set(got) == set(want), (sorted(set(want) - set(got))[:5], roles.log("retry")[-1500:])
    for key, values in want.items():
        p = got[key]
        assert p["memory_total_mean"] == pytest.approx(sum(values) / len(values), rel=1e-12), key
        assert p["memory_total_max"] == max(values)
    # Per process type, each from its own shard, too.
    shop = apps[0]
    for pt in types:
        only = points(api, shop, "dyno.memory", start, end)
        assert {k for k in only if k[0] == pt} == {
            (pt, t) for (n, p_, t) in want if n == "shop" and p_ == pt
        }
