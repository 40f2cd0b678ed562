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

Each run also notes the bench process's CPU time per summary while the sink drains the
backlog (the sink's threads and the bus client's are all that run in it then). With
`--bus kafka`, each run then measures the broker's ceiling on the same backlog: a bare
confluent-kafka consumer in a fresh group that only counts the messages, timed from the
first message to the last; the sink's rate is also given as a fraction of it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka
import numpy as np
import psycopg

from drainpipe import accum, codec
from drainpipe.bus import Bus, OutRecord, Position, TopicPartition
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.codec import EncodedSummary
from drainpipe.model import (
    LOAD,
    MEMORY,
    MINUTE_MS,
    ROUTER,
    Column,
    partition_for,
    partition_key,
    schema_of_family,
    summary_key,
)
from drainpipe.rollup.window import RawMessage, RollupCore
from drainpipe.sink.worker import Outcome, Pending, SinkWorker
from drainpipe.store import Store
from drainpipe.store.postgres import PostgresStore
from drainpipe.store.sqlite import SqliteStore
from drainpipe.telemetry.metrics import SelfMetrics
from tests.support.kafka_broker import CLIENT_TUNING, TansuBroker

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
        batch: list[RawMessage] = []
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
        self.cpu_at_assign = self.cpu_at_done = 0.0  # process CPU time at those moments
        self.stored = 0

    def _on_assign(self, assigned: Mapping[TopicPartition, Position]) -> None:
        if not self.assigned_at:
            self.assigned_at, self.cpu_at_assign = time.perf_counter(), time.process_time()
        super()._on_assign(assigned)

    def _write(
        self,
        batch: Pending,
        summaries: list[EncodedSummary],
        stop: threading.Event,
        give_up: float | None = None,
    ) -> Outcome:
        outcome = super()._write(batch, summaries, stop, give_up)
        self.stored += len(batch.messages)
        if self.stored >= self.expected and not self.done_at:
            self.done_at, self.cpu_at_done = time.perf_counter(), time.process_time()
            self.stop.set()
        return outcome


@dataclass(frozen=True)
class SinkRun:
    rate: float  # summaries/s from the sink's partition assignment until all are stored
    cpu_us: float  # CPU time of this process over that interval, per summary


def run_once(recs: list[OutRecord], store: Store, bus: Bus) -> SinkRun:
    """Put recs on the bus, then time a sink storing all of them."""
    for i in range(0, len(recs), 5000):
        bus.producer().send(recs[i : i + 5000]).result()
    stop = threading.Event()
    worker = TimedSink(bus, store, len(recs), stop)
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    thread.join(timeout=600)
    if not worker.done_at:
        raise RuntimeError(f"the sink stored {worker.stored} of {len(recs)} summaries in 600 s")
    return SinkRun(
        len(recs) / (worker.done_at - worker.assigned_at),
        (worker.cpu_at_done - worker.cpu_at_assign) / len(recs) * 1e6,
    )


@dataclass(frozen=True)
class Ceiling:
    rate: float  # messages/s from the first message to the last
    cpu_us: float  # CPU time of this process over that interval, per message
    from_assign: float  # messages/s from the partition assignment to the last, as the sink


def kafka_ceiling(bootstrap: str, topics: list[str], expected: int) -> Ceiling:
    """A bare consumer in a fresh group that only counts the messages of topics until it
    has `expected` of them: the rate the broker serves this backlog to one consumer.

    The sink's fetch settings (`fetch.queue.backoff.ms`), and the tests' short sessions
    so that Tansu does not hold the join for half of librdkafka's 45 s default."""
    consumer = confluent_kafka.Consumer(
        {
            **CLIENT_TUNING,
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-ceiling-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 20,
        }
    )
    assigned_at = 0.0

    def on_assign(c: confluent_kafka.Consumer, parts: list[confluent_kafka.TopicPartition]) -> None:
        nonlocal assigned_at
        assigned_at = assigned_at or time.perf_counter()

    consumer.subscribe(topics, on_assign=on_assign)
    try:
        deadline = time.monotonic() + 600
        count = 0
        while not count:  # one message at a time until the first one, to time from it
            if time.monotonic() > deadline:
                raise RuntimeError("the ceiling consumer got no message in 600 s")
            m = consumer.poll(1.0)
            if m is not None and m.error() is None:
                count = 1
        first, cpu_first = time.perf_counter(), time.process_time()
        while count < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the ceiling consumer got {count} of {expected} in 600 s")
            # Never ask for more than are left: consume(n, t) waits for n messages or t s.
            got = consumer.consume(min(10_000, expected - count), 1.0)
            count += sum(m.error() is None for m in got)
        last, cpu_last = time.perf_counter(), time.process_time()
    finally:
        consumer.close()
    return Ceiling(
        (count - 1) / (last - first),
        (cpu_last - cpu_first) / (count - 1) * 1e6,
        count / (last - assigned_at),
    )


@contextlib.contextmanager
def fresh_store(kind: str, tmp: Path) -> Iterator[Store]:
    """An empty store: a new PostgreSQL database (dropped afterwards) or SQLite file."""
    if kind == "sqlite":
        lite = SqliteStore(tmp / f"{uuid.uuid4().hex[:6]}.sqlite")
        try:
            yield lite
        finally:
            lite.close()
        return
    name = f"dp_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    pg = PostgresStore([f"postgresql://postgres@127.0.0.1:5432/{name}"])
    try:
        yield pg
    finally:
        pg.close()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


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
    # The backlog is the harness's, not the sink's: keep the collector from walking its
    # 323k records on every full collection, which a sink process would not hold.
    gc.freeze()
    print(
        f"sink, {args.stream} stream: {len(recs):,} summaries on the bus, {rows:,} distinct "
        f"keys ({len(recs) / rows:.1f} versions per key), "
        f"{sum(len(r.value) for r in recs) / len(recs):,.0f} bytes per summary"
    )
    stores = ("postgresql", "sqlite")
    out: dict[str, list[SinkRun]] = {k: [] for k in stores}
    ceilings: dict[str, list[Ceiling]] = {k: [] for k in stores}
    topics = sorted({r.topic for r in recs})
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if args.bus == "kafka" and not bootstrap:
        broker = TansuBroker()
        bootstrap = broker.start()
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            for kind in stores:
                with fresh_store(kind, Path(tmp)) as target:
                    bus = make_bus(args.bus, Path(tmp), bootstrap)
                    try:
                        out[kind].append(run_once(recs, target, bus))
                        if args.bus == "kafka":
                            ceilings[kind].append(ceiling_of(bus, bootstrap, topics, len(recs)))
                    finally:
                        bus.close()
    if broker is not None:
        broker.stop()
    summary: dict[str, float] = {}
    for store, sink_runs in out.items():
        rates = [r.rate for r in sink_runs]
        cpu = statistics.median(r.cpu_us for r in sink_runs)
        summary[store] = round(statistics.median(rates))
        summary[f"{store}_cpu_us"] = round(cpu, 2)
        print(
            f"  {store:10s} sink    median {statistics.median(rates):>9,.0f} summaries/s  "
            f"(runs: {runs_text(rates)})"
        )
        print(
            f"  {'':10s} sink CPU median {cpu:.2f} us/summary, so {1e6 / cpu:,.0f}/s on one "
            f"core (runs: {', '.join(f'{r.cpu_us:.2f}' for r in sink_runs)})"
        )
        if ceilings[store]:
            ceiling = [c.rate for c in ceilings[store]]
            ratios = [r.rate / c.rate for r, c in zip(sink_runs, ceilings[store], strict=True)]
            summary[f"{store}_ceiling"] = round(statistics.median(ceiling))
            summary[f"{store}_ratio"] = round(statistics.median(ratios), 3)
            from_assign = [c.from_assign for c in ceilings[store]]
            print(
                f"  {'':10s} ceiling median {statistics.median(ceiling):>9,.0f} messages/s  "
                f"(runs: {runs_text(ceiling)}), first message to last; from assignment "
                f"{statistics.median(from_assign):,.0f}; its CPU median "
                f"{statistics.median(c.cpu_us for c in ceilings[store]):.2f} us/message"
            )
            print(
                f"  {'':10s} sink/ceiling median {statistics.median(ratios):.2f}  "
                f"(runs: {', '.join(f'{r:.2f}' for r in ratios)})"
            )
    print(
        json.dumps(
            {
                "bench": "sink",
                "stream": args.stream,
                "bus": args.bus,
                "summaries": len(recs),
                "rows": rows,
                **summary,
            }
        )
    )


def ceiling_of(bus: Bus, bootstrap: str, topics: list[str], expected: int) -> Ceiling:
    """`kafka_ceiling` on the Kafka topics of the bus's names."""
    from drainpipe.bus.kafka import KafkaBus

    assert isinstance(bus, KafkaBus)
    return kafka_ceiling(bootstrap, [bus.topic(t) for t in topics], expected)


def runs_text(values: list[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values)


if __name__ == "__main__":
    main()
