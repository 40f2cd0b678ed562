"""Generated summaries for the store benchmarks: minutes of router, memory and load data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drainpipe import accum, codec
from drainpipe.codec import EncodedSummary
from drainpipe.model import MINUTE_MS, Summary


def encoded(summaries: Sequence[Summary]) -> list[EncodedSummary]:
    return [codec.encoded(s) for s in summaries]


def minute_summaries(
    owner: str, start_ms: int, minutes: int, rng: np.random.Generator, process_type: str = "web"
) -> list[Summary]:
    out = []
    for m in range(minutes):
        t = start_ms + m * MINUTE_MS
        router = accum.new_summary(owner, process_type, "router", 60, t)
        n = 200
        accum.add_columns(
            router,
            {
                "ts_ms": np.full(n, t, dtype=np.int64),
                "service_ms": np.round(rng.lognormal(3.5, 1.0, n)),
                "status": rng.choice([200, 200, 304, 404, 500], n).astype(np.int16),
                "code": np.where(rng.random(n) < 0.01, 12, 0).astype(np.int16),
            },
        )
        mem = accum.new_summary(owner, process_type, "dyno.memory", 60, t)
        k = 6
        accum.add_columns(
            mem,
            {
                "ts_ms": np.full(k, t, dtype=np.int64),
                **{
                    c: rng.uniform(100, 500, k)
                    for c in (
                        "memory_total",
                        "memory_rss",
                        "memory_cache",
                        "memory_swap",
                        "memory_quota",
                    )
                },
            },
        )
        load = accum.new_summary(owner, process_type, "dyno.load", 60, t)
        accum.add_columns(
            load,
            {
                "ts_ms": np.full(k, t, dtype=np.int64),
                **{c: rng.uniform(0, 4, k) for c in ("load_avg_1m", "load_avg_5m", "load_avg_15m")},
            },
        )
        out += [router, mem, load]
    return out
