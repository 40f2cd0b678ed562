"""Rollup throughput: measurements per second on one core, decode + add + flush.

A realistic mix as it leaves ingress: per app and process type, router batches of
~250 rows spanning one or two minutes, plus runtime-metrics batches (one sample per dyno
per 20 s). The loop is what the rollup worker does per poll, without bus I/O: decode
the poll's batches (up to `--poll` messages), add them to the core with one `add_many`,
and flush after a poll once `--flush-every` messages have been added since the last flush.
`--frames` stamps a drain frame id on every batch and runs the worker's check for
batches of retried frames (`rollup.frames`) on each, as the rollup worker does.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from drainpipe import codec
from drainpipe.model import (
    LOAD,
    MEMORY,
    MINUTE_MS,
    ROUTER,
    SCHEMA_BY_TOPIC,
    Column,
    partition_for,
    partition_key,
)
from drainpipe.rollup.frames import Frames
from drainpipe.rollup.window import RawMessage, RollupCore


def make_messages(
    apps: int, minutes: int, rows: int, seed: int = 1, frames: bool = False
) -> list[tuple[str, int, bytes]]:
    rng = np.random.default_rng(seed)
    base = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS
    out: list[tuple[str, int, bytes]] = []
    for minute in range(minutes):
        for a in range(apps):
            owner = f"app{a:05d}"
            t0 = base + minute * MINUTE_MS + int(rng.integers(0, 30_000))
            ts = np.sort(t0 + rng.integers(0, MINUTE_MS, rows))
            cols: dict[str, Column] = {
                "ts_ms": ts,
                "service_ms": np.round(rng.lognormal(3.5, 1.0, rows)),
                "status": rng.choice([200, 200, 200, 304, 404, 500], rows).astype(np.int16),
                "code": np.where(rng.random(rows) < 0.01, 12, 0).astype(np.int16),
                "connect_ms": rng.choice([0.0, 0.0, 1.0, 1.0, 2.0], rows),
                "bytes": np.round(rng.lognormal(7.0, 1.5, rows)),
            }
            frame = f"{minute:04d}{a:05d}{seed:023d}" if frames else ""  # 32 chars
            value = codec.encode_batch(ROUTER, owner, "web", cols, frame=frame)
            out.append((ROUTER.topic, partition_for(partition_key(owner, "web"), 32), value))
            for schema, names in ((MEMORY, MEMORY.columns), (LOAD, LOAD.columns)):
                n = 3 * 10  # 10 dynos, a sample each 20 s
                c = {name: rng.uniform(0, 500, n) for name, _ in names[1:]}
                c["ts_ms"] = np.sort(base + minute * MINUTE_MS + rng.integers(0, MINUTE_MS, n))
                v = codec.encode_batch(schema, owner, "web", c, frame=frame)
                out.append((schema.topic, partition_for(partition_key(owner, "web"), 32), v))
    return out


def measurements(messages: list[tuple[str, int, bytes]]) -> int:
    return sum(len(codec.decode_batch(SCHEMA_BY_TOPIC[t], v)[2]["ts_ms"]) for t, _, v in messages)


def run_once(
    messages: list[tuple[str, int, bytes]], poll: int, flush_every: int, check_frames: bool
) -> float:
    core = RollupCore()
    frames = Frames()
    since_flush = 0
    t = time.perf_counter()
    for first in range(0, len(messages), poll):
        batch: list[RawMessage] = []
        for i, (topic, part, value) in enumerate(messages[first : first + poll], first):
            schema = SCHEMA_BY_TOPIC[topic]
            owner, pt, cols, series, frame = codec.decode_series(schema, value)
            if check_frames and frame:
                ts = cols["ts_ms"]
                key = (topic, owner, pt, series, frame)
                if frames.repeated((topic, part), i, key, int(ts.max()) if ts.size else 0):
                    continue
            batch.append(((topic, part), i, schema.family, owner, pt, cols))
        core.add_many(batch)
        since_flush += len(batch)
        if since_flush >= flush_every:
            since_flush = 0
            codec.encode_summaries(core.flush())
    codec.encode_summaries(core.flush())
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--apps", type=int, default=200)
    p.add_argument("--minutes", type=int, default=10)
    p.add_argument("--rows", type=int, default=250, help="router rows per app per minute batch")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--poll", type=int, default=2000, help="messages per poll (the worker's)")
    p.add_argument("--flush-every", type=int, default=500, help="messages between flushes")
    p.add_argument("--frames", action="store_true", help="frame ids and the retry check")
    args = p.parse_args()
    messages = make_messages(args.apps, args.minutes, args.rows, frames=args.frames)
    n = measurements(messages)
    times = [run_once(messages, args.poll, args.flush_every, args.frames) for _ in range(args.runs)]
    med = statistics.median(times)
    print(
        f"rollup{' with frame checks' if args.frames else ''}: {len(messages)} messages, "
        f"{n} measurements, polls of {args.poll}; "
        f"median of {args.runs} runs "
        f"{med:.3f} s = {n / med:,.0f} measurements/s on one core "
        f"(runs: {', '.join(f'{n / t:,.0f}' for t in times)})"
    )


if __name__ == "__main__":
    main()
