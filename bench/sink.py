"""Sink throughput: summaries/s from the bus into the store, one sink process.

Puts a backlog of encoded summaries on an embedded bus, then times a `SinkWorker`
consuming all of it into a fresh PostgreSQL database (COPY into staging, one upsert
per transaction) and into SQLite, until every summary is stored and committed. Two
streams:

- `rollup`: the summary topic as the rollup writes it. `RollupCore` is fed simulated
  seconds of traffic (`--apps` apps, 5 requests/s each, 10 dynos each sending runtime
  metrics every 20 s) and flushed after each second, as the worker's 1 s flush does:
  an open window is published again every second it changes, each version superseding
  the last, so a sink working through a backlog finds several versions of a key in one
  batch and writes only the newest.
- `distinct`: N summaries of N different keys, each a new row; the worst case, where
  every message is a row to upsert.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import psycopg

from drainpipe import accum, codec
from drainpipe.accum import Column
from drainpipe.bus import Bus, OutRecord, Position, TopicPartition
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.codec import EncodedSummary
from drainpipe.model import (
    LOAD,
    MEMORY,
    MINUTE_MS,
    ROUTER,
    partition_for,
    partition_key,
    schema_of_family,
    summary_key,
)
from drainpipe.rollup.window import Message, RollupCore
from drainpipe.selfmetrics import SelfMetrics
from drainpipe.sink import Batch, Outcome, SinkWorker
from drainpipe.store import Store
from drainpipe.store.postgres import PostgresStore
from drainpipe.store.sqlite import SqliteStore
from tests.kafka_broker import CLIENT_TUNING, TansuBroker

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def records(n: int, apps: int = 500) -> list[OutRecord]:
    rng = np.random.default_rng(11)
    base = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS - 60 * MINUTE_MS
    out = []
    for i in range(n):
        s = accum.new_summary(
            f"app{i % apps:05d}", "web", "router", 60, base + (i // apps) * MINUTE_MS
        )
        k = 100
        accum.add_columns(
            s,
            {
                "ts_ms": np.full(k, s.start_ms, dtype=np.int64),
                "service_ms": np.round(rng.lognormal(3.5, 1.0, k)),
                "status": rng.choice([200, 304, 404, 500], k).astype(np.int16),
                "code": np.zeros(k, dtype=np.int16),
            },
        )
        out.append(OutRecord(ROUTER.summary_topic, summary_key(s), codec.encode_summary(s)))
    return out


def rollup_records(apps: int, seconds: int, seed: int = 5) -> list[OutRecord]:
    """The summary records the rollup publishes for `seconds` of simulated traffic."""
    rng = np.random.default_rng(seed)
    base = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS - 30 * MINUTE_MS
    core = RollupCore()
    owners = [f"app{a:05d}" for a in range(apps)]
    out: list[OutRecord] = []
    offset = 0
    for second in range(seconds):
        t0 = base + second * 1000
        batch: list[Message] = []
        for owner in owners:
            part = partition_for(partition_key(owner, "web"), 32)
            k = int(rng.poisson(5))
            router: dict[str, Column] = {
                "ts_ms": np.sort(t0 + rng.integers(0, 1000, k)),
                "service_ms": np.round(rng.lognormal(3.5, 1.0, k)),
                "status": rng.choice([200, 200, 200, 304, 404, 500], k).astype(np.int16),
                "code": np.zeros(k, dtype=np.int16),
            }
            batch.append(((ROUTER.topic, part), offset, ROUTER.family, owner, "web", router))
            offset += 1
            for schema in (MEMORY, LOAD):
                m = int(rng.binomial(10, 1 / 20))  # 10 dynos, one sample each per 20 s
                if m:
                    cols = {name: rng.uniform(0, 500, m) for name, _ in schema.columns[1:]}
                    cols["ts_ms"] = np.full(m, t0, dtype=np.int64)
                    batch.append(((schema.topic, part), offset, schema.family, owner, "web", cols))
                    offset += 1
        core.add_many(batch)
        summaries = core.flush()
        out.extend(
            OutRecord(schema_of_family(s.family).summary_topic, summary_key(s), value)
            for s, value in zip(summaries, codec.encode_summaries(summaries), strict=True)
        )
    return out


def rows_of(recs: list[OutRecord]) -> int:
    return len({(r.topic, r.key) for r in recs})


class TimedSink(SinkWorker):
    """A SinkWorker that notes when its partitions were assigned and when it has stored
    `expected` messages, and then stops itself."""

    def __init__(self, bus: Bus, store: Store, expected: int, stop: threading.Event) -> None:
        super().__init__(bus, store, SelfMetrics())
        self.expected, self.stop = expected, stop
        self.assigned_at = self.done_at = 0.0
        self.stored = 0

    def _on_assign(self, assigned: Mapping[TopicPartition, Position]) -> None:
        self.assigned_at = self.assigned_at or time.perf_counter()
        super()._on_assign(assigned)

    def _write(
        self, batch: Batch, summaries: list[EncodedSummary], stop: threading.Event
    ) -> Outcome:
        outcome = super()._write(batch, summaries, stop)
        self.stored += len(batch.messages)
        if self.stored >= self.expected:
            self.done_at = time.perf_counter()
            self.stop.set()
        return outcome


def run_once(recs: list[OutRecord], store: Store, bus: Bus) -> float:
    """Summaries/s from the sink's partition assignment until all of recs are stored."""
    for i in range(0, len(recs), 5000):
        bus.producer().send(recs[i : i + 5000]).result()
    stop = threading.Event()
    worker = TimedSink(bus, store, len(recs), stop)
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    thread.join(timeout=600)
    if not worker.done_at:
        raise RuntimeError(f"the sink stored {worker.stored} of {len(recs)} summaries in 600 s")
    return len(recs) / (worker.done_at - worker.assigned_at)


def make_bus(kind: str, tmp: Path, bootstrap: str) -> Bus:
    if kind == "embedded":
        return EmbeddedBus(tmp / f"bus-{uuid.uuid4().hex[:6]}", partitions=8)
    from drainpipe.bus.kafka import KafkaBus

    return KafkaBus(
        bootstrap,
        partitions=8,
        replication=1,
        topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.",
        extra=dict(CLIENT_TUNING),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--stream", choices=["rollup", "distinct"], default="rollup")
    p.add_argument("--apps", type=int, default=1000, help="rollup stream: apps")
    p.add_argument("--seconds", type=int, default=180, help="rollup stream: simulated seconds")
    p.add_argument("--summaries", type=int, default=50_000, help="distinct stream: summaries")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument(
        "--bus",
        choices=["embedded", "kafka"],
        default="embedded",
        help="kafka: a Tansu broker on loopback, or $KAFKA_BOOTSTRAP_SERVERS",
    )
    args = p.parse_args()
    if args.stream == "rollup":
        recs = rollup_records(args.apps, args.seconds)
    else:
        recs = records(args.summaries)
    rows = rows_of(recs)
    print(
        f"sink, {args.stream} stream: {len(recs):,} summaries on the bus, {rows:,} distinct "
        f"keys ({len(recs) / rows:.1f} versions per key), "
        f"{sum(len(r.value) for r in recs) / len(recs):,.0f} bytes per summary"
    )
    out: dict[str, list[float]] = {"postgresql": [], "sqlite": []}
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if args.bus == "kafka" and not bootstrap:
        broker = TansuBroker()
        bootstrap = broker.start()
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            name = f"dp_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(ADMIN, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            pg = PostgresStore([f"postgresql://postgres@127.0.0.1:5432/{name}"])
            bus = make_bus(args.bus, Path(tmp), bootstrap)
            try:
                out["postgresql"].append(run_once(recs, pg, bus))
            finally:
                bus.close()
                pg.close()
                with psycopg.connect(ADMIN, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
            lite = SqliteStore(Path(tmp) / f"{uuid.uuid4().hex[:6]}.sqlite")
            bus = make_bus(args.bus, Path(tmp), bootstrap)
            try:
                out["sqlite"].append(run_once(recs, lite, bus))
            finally:
                bus.close()
                lite.close()
    if broker is not None:
        broker.stop()
    for store, rates in out.items():
        print(
            f"  {store:10s} median {statistics.median(rates):>9,.0f} summaries/s  "
            f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})"
        )
    print(
        json.dumps(
            {
                "bench": "sink",
                "stream": args.stream,
                "bus": args.bus,
                "summaries": len(recs),
                "rows": rows,
                **{k: round(statistics.median(v)) for k, v in out.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
