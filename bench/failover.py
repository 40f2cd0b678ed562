"""Rollup failover on a Kafka-protocol broker (Tansu): how long a dead member's partitions
stay unread, and how long a restarted member waits for its own.

Two `drainpipe rollup` processes share a group on 4-partition topics (16 partitions in
all). One is killed with kill -9; the time until the survivor logs it holds all 16 is
the takeover. The killed one is then started again; the time until it logs an
assignment is the rejoin. `--kafka-config` passes DRAINPIPE_KAFKA_CONFIG (librdkafka
settings), to compare session timeouts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

from tests.support import drains
from tests.support.kafka_broker import TansuBroker

ALL = 16


def events(path: Path) -> list[tuple[str, int | None]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if '"rollup.assigned"' in line or '"bus.revoked"' in line:
            d = json.loads(line)
            found.append((d["event"], d.get("partitions")))
    return found


def wait(done: object, limit_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if done():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.1)
    raise SystemExit(f"not within {limit_s:g} s")


def rollup(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "drainpipe.cli", "rollup", "--port", str(drains.free_port())],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def run_once(kafka_config: str, tmp: Path) -> tuple[float, float]:
    with TansuBroker() as bootstrap:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONUNBUFFERED": "1",
               "DRAINPIPE_TOPIC_PREFIX": f"f{uuid.uuid4().hex[:6]}.",
               "DRAINPIPE_KAFKA_PARTITIONS": "4", "DRAINPIPE_KAFKA_REPLICATION": "1"}  # fmt: skip
        env.pop("DRAINPIPE_KAFKA_CONFIG", None)
        if kafka_config:
            env["DRAINPIPE_KAFKA_CONFIG"] = kafka_config
        logs = {n: tmp / f"{n}-{uuid.uuid4().hex[:4]}.log" for n in ("a", "b", "again")}
        a = rollup(env, logs["a"])
        b = rollup(env, logs["b"])
        try:

            def split() -> bool:
                return all(
                    (e := events(logs[n])) and e[-1] == ("rollup.assigned", ALL // 2)
                    for n in ("a", "b")
                )

            wait(split, 120)
            seen = len(events(logs["b"]))
            a.send_signal(signal.SIGKILL)
            a.wait()
            takeover = wait(
                lambda: (e := events(logs["b"]))[seen:] and e[-1] == ("rollup.assigned", ALL), 180
            )
            a = rollup(env, logs["again"])
            rejoin = wait(
                lambda: (e := events(logs["again"])) and e[-1][0] == "rollup.assigned", 180
            )
            return takeover, rejoin
        finally:
            for p in (a, b):
                p.terminate()
            for p in (a, b):
                p.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--kafka-config", default="", help="DRAINPIPE_KAFKA_CONFIG for the roles")
    args = p.parse_args()
    with TemporaryDirectory() as tmp:
        results = [run_once(args.kafka_config, Path(tmp)) for _ in range(args.runs)]
    for name, i in (("takeover after kill -9", 0), ("rejoin after restart", 1)):
        values = sorted(r[i] for r in results)
        print(f"{name}: median {values[len(values) // 2]:.1f} s "
              f"(runs: {', '.join(f'{v:.1f}' for v in values)})")  # fmt: skip


if __name__ == "__main__":
    main()
