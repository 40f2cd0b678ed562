"""Rollup failover on a Kafka-protocol broker (Tansu): how long a dead member's partitions
stay unread, how long the survivor stops, and how long a restarted member waits.

Two `drainpipe rollup` processes share a group on 4-partition topics (16 partitions in
all). One is killed with kill -9. The takeover is the time until the survivor holds all
16 (from its `bus.assigned` lines). The killed one is then started again; the rejoin is
the time until it holds partitions again. The pause is how long the survivor held no
partition at all through both rebalances (0 when its own stay with it).
`--kafka-config` passes DRAINPIPE_KAFKA_CONFIG (librdkafka settings), to compare
session timeouts and assignors; `--static` gives each member an instance id
(DRAINPIPE_INSTANCE_ID), the restarted one its old one. With KAFKA_BOOTSTRAP_SERVERS
set it runs on that cluster instead (topics get a fresh prefix each run).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

from tests.support import drains, members
from tests.support.kafka_broker import TansuBroker

ALL = 16


def wait(done: Callable[[], bool], limit_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if done():
            return time.monotonic() - started
        time.sleep(0.05)
    raise SystemExit(f"not within {limit_s:g} s")


def rollup(env: dict[str, str], log: Path, instance: str) -> subprocess.Popen[bytes]:
    env = {**env, "DRAINPIPE_INSTANCE_ID": instance} if instance else env
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "drainpipe.cli", "rollup", "--port", str(drains.free_port())],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@dataclass
class Run:
    takeover_s: float
    pause_s: float
    rejoin_s: float


def broker() -> contextlib.AbstractContextManager[str]:
    """$KAFKA_BOOTSTRAP_SERVERS when set (a real cluster), else a fresh Tansu broker."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    return contextlib.nullcontext(given) if given else TansuBroker()


def run_once(kafka_config: str, static: bool, tmp: Path) -> Run:
    with broker() as bootstrap:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONUNBUFFERED": "1",
               "DRAINPIPE_TOPIC_PREFIX": f"f{uuid.uuid4().hex[:6]}.",
               "DRAINPIPE_KAFKA_PARTITIONS": "4", "DRAINPIPE_KAFKA_REPLICATION": "1"}  # fmt: skip
        for name in ("DRAINPIPE_KAFKA_CONFIG", "DRAINPIPE_INSTANCE_ID", "DYNO"):
            env.pop(name, None)
        if kafka_config:
            env["DRAINPIPE_KAFKA_CONFIG"] = kafka_config
        logs = {n: tmp / f"{n}-{uuid.uuid4().hex[:4]}.log" for n in ("a", "b", "again")}
        a = rollup(env, logs["a"], "rollup.1" if static else "")
        b = rollup(env, logs["b"], "rollup.2" if static else "")
        try:
            wait(lambda: members.holding(logs["a"]) == members.holding(logs["b"]) == ALL // 2, 120)
            a.send_signal(signal.SIGKILL)
            killed_at = time.time()
            a.wait()
            takeover = wait(lambda: members.holding(logs["b"]) == ALL, 180)
            a = rollup(env, logs["again"], "rollup.1" if static else "")
            rejoin = wait(lambda: members.holding(logs["again"]) > 0, 180)
            wait(
                lambda: members.holding(logs["again"]) == members.holding(logs["b"]) == ALL // 2,
                180,
            )
            # How long the survivor read nothing, through both rebalances.
            pause, idle_since = 0.0, None
            for c in members.changes(logs["b"]):
                if c.at < killed_at - 0.5:
                    continue
                if c.holding == 0 and idle_since is None:
                    idle_since = c.at
                elif c.holding > 0 and idle_since is not None:
                    pause, idle_since = pause + c.at - idle_since, None
            return Run(takeover, pause, rejoin)
        finally:
            for p in (a, b):
                p.terminate()
            for p in (a, b):
                p.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--kafka-config", default="", help="DRAINPIPE_KAFKA_CONFIG for the roles")
    p.add_argument("--static", action="store_true", help="give members instance ids")
    args = p.parse_args()
    with TemporaryDirectory() as tmp:
        results = []
        for i in range(args.runs):
            results.append(run_once(args.kafka_config, args.static, Path(tmp)))
            r = results[-1]
            print(f"run {i + 1}: takeover {r.takeover_s:.1f} s, survivor idle "
                  f"{r.pause_s:.1f} s, rejoin {r.rejoin_s:.1f} s", flush=True)  # fmt: skip
    for name, key in (("takeover after kill -9", "takeover_s"),
                      ("survivor read nothing", "pause_s"),
                      ("rejoin after restart", "rejoin_s")):  # fmt: skip
        values = sorted(getattr(r, key) for r in results)
        print(f"{name}: median {values[len(values) // 2]:.1f} s "
              f"(runs: {', '.join(f'{v:.1f}' for v in values)})")  # fmt: skip


if __name__ == "__main__":
    main()
