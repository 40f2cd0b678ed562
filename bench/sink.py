"""Sink throughput: summaries/s from the bus into the store, one sink process.

Puts N encoded one-minute router summaries (with sketches, as the rollup makes them) on
an embedded bus, then times a `SinkWorker` consuming them into a fresh PostgreSQL
database (COPY into staging, one upsert per batch) and into SQLite, until all are
stored and committed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg

from drainpipe import accum, codec
from drainpipe.bus import OutRecord
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.model import MINUTE_MS, ROUTER, summary_key
from drainpipe.selfmetrics import SelfMetrics
from drainpipe.sink import SinkWorker
from drainpipe.store import Store
from drainpipe.store.postgres import PostgresStore
from drainpipe.store.sqlite import SqliteStore

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


def run_once(recs: list[OutRecord], store: Store, tmp: Path) -> float:
    bus = EmbeddedBus(tmp / f"bus-{uuid.uuid4().hex[:6]}", partitions=8)
    for i in range(0, len(recs), 5000):
        bus.producer().send(recs[i : i + 5000]).result()
    worker = SinkWorker(bus, store, SelfMetrics())
    stop = threading.Event()
    t0 = time.perf_counter()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    stop.set()  # the sink drains everything, then stops
    thread.join()
    elapsed = time.perf_counter() - t0
    bus.close()
    return len(recs) / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--summaries", type=int, default=50_000)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    recs = records(args.summaries)
    out: dict[str, list[float]] = {"postgresql": [], "sqlite": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            name = f"dp_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(ADMIN, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            pg = PostgresStore([f"postgresql://postgres@127.0.0.1:5432/{name}"])
            try:
                out["postgresql"].append(run_once(recs, pg, Path(tmp)))
            finally:
                pg.close()
                with psycopg.connect(ADMIN, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
            lite = SqliteStore(Path(tmp) / f"{uuid.uuid4().hex[:6]}.sqlite")
            out["sqlite"].append(run_once(recs, lite, Path(tmp)))
            lite.close()
    for store, rates in out.items():
        print(
            f"  {store:10s} median {statistics.median(rates):>9,.0f} summaries/s  "
            f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})"
        )
    print(
        json.dumps(
            {
                "bench": "sink",
                "summaries": args.summaries,
                **{k: round(statistics.median(v)) for k, v in out.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
