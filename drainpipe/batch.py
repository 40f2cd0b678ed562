"""Turn the frames of one drain request into bus records: parse, check, group, encode.

Pure: no I/O and no clock (the caller passes `now_ms`). Lines are grouped into one
columnar batch per (measurement type, process type), so a 500-line request becomes a
handful of bus messages, each keyed by owner and process type for partitioning.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from drainpipe import codec
from drainpipe.bus import OutRecord
from drainpipe.model import (
    EVENTS_TOPIC,
    LOAD,
    MEMORY,
    ROUTER,
    DynoLoad,
    DynoMemory,
    EventBatch,
    EventRecord,
    PlatformEvent,
    RouterRequest,
    Schema,
    Skipped,
    partition_key,
)
from drainpipe.parse import parse_message

NAN = math.nan


@dataclass
class Parsed:
    records: list[OutRecord] = field(default_factory=list)
    lines: Counter[str] = field(default_factory=Counter)  # by kind
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    upstream_dropped: int = 0  # Logplex L10: messages lost before the drain


def _f(v: float | None) -> float:
    return NAN if v is None else v


def _code(code: str | None) -> int:
    if code is None:
        return 0
    try:
        return int(code[1:])
    except ValueError:
        return 0


def build(owner: str, frames: list[bytes], now_ms: int, max_future_ms: int) -> Parsed:
    out = Parsed()
    rows: dict[tuple[Schema, str], list[tuple[float, ...]]] = {}
    events: dict[str, list[EventRecord]] = {}
    horizon = now_ms + max_future_ms
    for frame in frames:
        rec = parse_message(frame)
        if rec is None:
            out.lines["other"] += 1
            continue
        if isinstance(rec, Skipped):
            out.skipped[rec.reason] += 1
            continue
        if rec.ts_ms > horizon:
            out.skipped["clock_skew"] += 1
            continue
        if isinstance(rec, RouterRequest):
            out.lines["router"] += 1
            rows.setdefault((ROUTER, rec.process_type), []).append(
                (rec.ts_ms, _f(rec.service_ms), rec.status, _code(rec.code))
            )
        elif isinstance(rec, DynoMemory):
            out.lines["memory"] += 1
            rows.setdefault((MEMORY, rec.process_type), []).append(
                (
                    rec.ts_ms,
                    _f(rec.memory_total),
                    _f(rec.memory_rss),
                    _f(rec.memory_cache),
                    _f(rec.memory_swap),
                    _f(rec.memory_quota),
                )
            )
        elif isinstance(rec, DynoLoad):
            out.lines["load"] += 1
            rows.setdefault((LOAD, rec.process_type), []).append(
                (rec.ts_ms, _f(rec.load_avg_1m), _f(rec.load_avg_5m), _f(rec.load_avg_15m))
            )
        elif isinstance(rec, PlatformEvent):
            out.lines["event"] += 1
            if rec.kind == "logplex_drop":
                out.upstream_dropped += int(rec.attrs.get("dropped", "0") or 0)
            events.setdefault(rec.process_type, []).append(
                EventRecord(
                    rec.ts_ms, rec.process_type, rec.source, rec.kind, rec.text, dict(rec.attrs)
                )
            )
    for (schema, pt), table in rows.items():
        columns = {}
        for i, (name, dtype) in enumerate(schema.columns):
            columns[name] = np.fromiter((r[i] for r in table), dtype=dtype, count=len(table))
        value = codec.encode_batch(schema, owner, pt, columns)
        out.records.append(OutRecord(schema.topic, partition_key(owner, pt), value))
    for pt, evs in events.items():
        value = codec.encode_events(EventBatch(owner, pt, evs))
        out.records.append(OutRecord(EVENTS_TOPIC, partition_key(owner, pt), value))
    return out
