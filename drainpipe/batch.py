"""Turn the frames of one drain request into bus records: parse, check, group, encode.

Pure: no I/O and no clock (the caller passes `now_ms`). Lines are grouped into one
columnar batch per (measurement type, process type), so a 500-line request becomes a
handful of bus messages, each keyed by owner and process type for partitioning.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from drainpipe import codec
from drainpipe.accum import Column
from drainpipe.bus import OutRecord
from drainpipe.model import (
    CUSTOM,
    CUSTOM_KINDS,
    EVENTS_TOPIC,
    LOAD,
    MEMORY,
    ROUTER,
    CustomMetrics,
    DynoLoad,
    DynoMemory,
    EventBatch,
    EventRecord,
    Record,
    RouterRequest,
    Schema,
    Skipped,
    partition_key,
)
from drainpipe.parse import parse_message, read_router

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


_Key = tuple[Schema, str, str]  # (measurement type, process type, series)
_Rows = dict[_Key, list[tuple[float, ...]]]
_Events = dict[str, list[EventRecord]]


NO_ROWS: tuple[_Key, ...] = ()


def _take(
    rec: Record | Skipped | None, horizon: int, out: Parsed, rows: _Rows, events: _Events
) -> tuple[_Key, ...]:
    """Count one parsed line in `out` and add its rows or event; the key of each added row."""
    if rec is None:
        out.lines["other"] += 1
        return NO_ROWS
    if isinstance(rec, Skipped):
        out.skipped[rec.reason] += 1
        return NO_ROWS
    if rec.ts_ms > horizon:
        out.skipped["clock_skew"] += 1
        return NO_ROWS
    key: _Key
    if isinstance(rec, RouterRequest):
        out.lines["router"] += 1
        key = (ROUTER, rec.process_type, "")
        rows.setdefault(key, []).append(
            (rec.ts_ms, _f(rec.service_ms), rec.status, _code(rec.code))
        )
        return (key,)
    if isinstance(rec, CustomMetrics):
        out.lines["custom"] += 1
        keys = []
        for name, kind, value in rec.items:
            key = (CUSTOM, rec.process_type, name)
            rows.setdefault(key, []).append((rec.ts_ms, value, CUSTOM_KINDS[kind]))
            keys.append(key)
        return tuple(keys)
    if isinstance(rec, DynoMemory):
        out.lines["memory"] += 1
        key = (MEMORY, rec.process_type, "")
        rows.setdefault(key, []).append(
            (
                rec.ts_ms,
                _f(rec.memory_total),
                _f(rec.memory_rss),
                _f(rec.memory_cache),
                _f(rec.memory_swap),
                _f(rec.memory_quota),
            )
        )
        return (key,)
    if isinstance(rec, DynoLoad):
        out.lines["load"] += 1
        key = (LOAD, rec.process_type, "")
        rows.setdefault(key, []).append(
            (rec.ts_ms, _f(rec.load_avg_1m), _f(rec.load_avg_5m), _f(rec.load_avg_15m))
        )
        return (key,)
    out.lines["event"] += 1
    if rec.kind == "logplex_drop":
        out.upstream_dropped += int(rec.attrs.get("dropped", "0") or 0)
    events.setdefault(rec.process_type, []).append(
        EventRecord(rec.ts_ms, rec.process_type, rec.source, rec.kind, rec.text, dict(rec.attrs))
    )
    return NO_ROWS


def _columns(schema: Schema, table: list[tuple[float, ...]]) -> dict[str, Column]:
    return {
        name: np.fromiter((r[i] for r in table), dtype=dtype, count=len(table))
        for i, (name, dtype) in enumerate(schema.columns)
    }


def _encode(
    owner: str, batches: Sequence[tuple[_Key, Mapping[str, Column]]], events: _Events, out: Parsed
) -> Parsed:
    for (schema, pt, series), columns in batches:
        value = codec.encode_batch(schema, owner, pt, columns, series)
        out.records.append(OutRecord(schema.topic, partition_key(owner, pt), value))
    for pt, evs in events.items():
        value = codec.encode_events(EventBatch(owner, pt, evs))
        out.records.append(OutRecord(EVENTS_TOPIC, partition_key(owner, pt), value))
    return out


def build_reference(owner: str, frames: list[bytes], now_ms: int, max_future_ms: int) -> Parsed:
    """What `build` returns, computed one line at a time with `parse_message`."""
    out = Parsed()
    rows: _Rows = {}
    events: _Events = {}
    horizon = now_ms + max_future_ms
    for frame in frames:
        _take(parse_message(frame), horizon, out, rows, events)
    batches = [(key, _columns(key[0], table)) for key, table in rows.items()]
    return _encode(owner, batches, events, out)


def build(owner: str, frames: list[bytes], now_ms: int, max_future_ms: int) -> Parsed:
    """Records, line counts and skip counts of one request's frames.

    The usual router lines are read in bulk (parse.bulk), every other line by
    `parse_message`; the result equals `build_reference` exactly: batches in the order
    of their first line, rows in frame order, the same counts.
    """
    out = Parsed()
    rows: _Rows = {}
    events: _Events = {}
    where: dict[_Key, list[int]] = {}  # frame index of each row in `rows`
    horizon = now_ms + max_future_ms
    bulk = read_router(frames)
    for i in bulk.rest:
        for key in _take(parse_message(frames[i]), horizon, out, rows, events):
            where.setdefault(key, []).append(i)
    if bulk.skipped:
        out.skipped["router_line"] += bulk.skipped
    fresh = bulk.ts_ms <= horizon
    kept = int(np.count_nonzero(fresh))
    if kept < len(fresh):
        out.skipped["clock_skew"] += len(fresh) - kept
    if kept:
        out.lines["router"] += kept
    # (first frame index, key, columns) of every batch
    batches: list[tuple[int, _Key, Mapping[str, Column]]] = []
    for pt_id, pt in enumerate(bulk.process_types):
        chosen = fresh & (bulk.pt_id == pt_id) if len(bulk.process_types) > 1 else fresh
        index = bulk.index[chosen]
        if not len(index):
            continue
        columns = {
            "ts_ms": bulk.ts_ms[chosen],
            "service_ms": bulk.service_ms[chosen],
            "status": bulk.status[chosen],
            "code": bulk.code[chosen],
        }
        key = (ROUTER, pt, "")
        table = rows.pop(key, None)
        if table is not None:  # router lines of this process type read one by one too
            index = np.concatenate((index, np.array(where[key], np.int64)))
            order = np.argsort(index, kind="stable")
            one_by_one = _columns(ROUTER, table)
            columns = {
                name: np.concatenate((columns[name], one_by_one[name]))[order] for name in columns
            }
            index = index[order]
        batches.append((int(index[0]), key, columns))
    for key, table in rows.items():
        batches.append((where[key][0], key, _columns(key[0], table)))
    batches.sort(key=lambda batch: batch[0])
    return _encode(owner, [(key, columns) for _, key, columns in batches], events, out)
