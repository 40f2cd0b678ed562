"""Turn the frames of one drain request into bus records: parse, check, group, encode.

Pure: no I/O and no clock (the caller passes `now_ms`). Lines are grouped into one
columnar batch per (measurement type, process type, series), so a 500-line request
becomes a handful of bus messages, each keyed by owner and process type for partitioning.

Grouping must not change what counts as late: `order.in_log_order` cuts the batches
where a line may move a watermark into a later minute.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from drainpipe import codec
from drainpipe.bus import OutRecord
from drainpipe.ingest.order import Piece, SeriesKey, in_log_order
from drainpipe.ingest.parse import parse_message, read_router
from drainpipe.ingest.parse.bulkheader import read_headers
from drainpipe.ingest.parse.bulkruntime import SampleColumns, read_runtime
from drainpipe.ingest.parse.events import EventParts
from drainpipe.ingest.parse.line import read_message, read_text
from drainpipe.model import (
    CUSTOM,
    CUSTOM_KINDS,
    EVENTS_TOPIC,
    LOAD,
    MEMORY,
    ROUTER,
    Column,
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
    skipped_name,
)

NAN = math.nan


@dataclass
class Parsed:
    records: list[OutRecord] = field(default_factory=list)
    # Per record: its process type, custom metric name ("" for others) and row count.
    series: list[tuple[str, str, int]] = field(default_factory=list)
    lines: Counter[str] = field(default_factory=Counter)  # by kind
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    upstream_dropped: int = 0  # Logplex L10: messages lost before the drain


def _or_nan(v: float | None) -> float:
    """An absent measurement as NaN, as the columns keep it."""
    return NAN if v is None else v


def _h_number(code: str | None) -> int:
    """A router error code's number (H12 -> 12), 0 for none."""
    if code is None:
        return 0
    try:
        return int(code[1:])
    except ValueError:
        return 0


_Rows = dict[SeriesKey, list[tuple[float, ...]]]
_Events = dict[str, list[EventRecord]]


NO_ROWS: tuple[SeriesKey, ...] = ()
NO_LIMIT = 1 << 62  # max_age_ms that keeps lines of any age


def _take_record(
    rec: Record | Skipped | None,
    oldest: int,
    horizon: int,
    out: Parsed,
    rows: _Rows,
    events: _Events,
) -> tuple[SeriesKey, ...]:
    """Count one parsed line in `out` and add its rows or event; the key of each added row."""
    if rec is None:
        out.lines["other"] += 1
        return NO_ROWS
    if isinstance(rec, Skipped):
        out.skipped[rec.reason] += 1
        return NO_ROWS
    if not oldest <= rec.ts_ms <= horizon:
        out.skipped["clock_skew" if rec.ts_ms > horizon else "too_old"] += 1
        return NO_ROWS
    key: SeriesKey
    if isinstance(rec, RouterRequest):
        out.lines["router"] += 1
        key = (ROUTER, rec.process_type, "")
        rows.setdefault(key, []).append(
            (
                rec.ts_ms,
                _or_nan(rec.service_ms),
                rec.status,
                _h_number(rec.code),
                _or_nan(rec.connect_ms),
                _or_nan(rec.bytes),
            )
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
                _or_nan(rec.memory_total),
                _or_nan(rec.memory_rss),
                _or_nan(rec.memory_cache),
                _or_nan(rec.memory_swap),
                _or_nan(rec.memory_quota),
            )
        )
        return (key,)
    if isinstance(rec, DynoLoad):
        out.lines["load"] += 1
        key = (LOAD, rec.process_type, "")
        rows.setdefault(key, []).append(
            (
                rec.ts_ms,
                _or_nan(rec.load_avg_1m),
                _or_nan(rec.load_avg_5m),
                _or_nan(rec.load_avg_15m),
            )
        )
        return (key,)
    out.lines["event"] += 1
    if rec.kind == "logplex_drop":
        out.upstream_dropped += int(rec.attrs.get("dropped", "0") or 0)
    events.setdefault(rec.process_type, []).append(
        EventRecord(rec.ts_ms, rec.process_type, rec.source, rec.kind, rec.text, dict(rec.attrs))
    )
    return NO_ROWS


def _take_event(event: EventParts, oldest: int, horizon: int, out: Parsed, events: _Events) -> None:
    """What `_take` does with the PlatformEvent of these fields."""
    ts_ms, process_type, source, kind, text, attrs = event
    if not oldest <= ts_ms <= horizon:
        out.skipped["clock_skew" if ts_ms > horizon else "too_old"] += 1
        return
    out.lines["event"] += 1
    if kind == "logplex_drop":
        out.upstream_dropped += int(attrs.get("dropped", "0") or 0)
    # attrs is the line's own fresh dict, so unlike in _take it needs no copy
    events.setdefault(process_type, []).append(
        EventRecord(ts_ms, process_type, source, kind, text, attrs)
    )


def _columns(schema: Schema, table: list[tuple[float, ...]]) -> dict[str, Column]:
    return {
        name: np.fromiter((r[i] for r in table), dtype=dtype, count=len(table))
        for i, (name, dtype) in enumerate(schema.columns)
    }


def _encode(
    owner: str,
    batches: Sequence[tuple[SeriesKey, Mapping[str, Column]]],
    events: _Events,
    out: Parsed,
    frame_id: str,
) -> Parsed:
    for (schema, pt, series), columns in batches:
        value = codec.encode_batch(schema, owner, pt, columns, series, frame_id)
        out.records.append(OutRecord(schema.topic, partition_key(owner, pt), value))
        out.series.append((pt, series, len(columns["ts_ms"])))
    for pt, evs in events.items():
        value = codec.encode_events(EventBatch(owner, pt, evs))
        out.records.append(OutRecord(EVENTS_TOPIC, partition_key(owner, pt), value))
        out.series.append((pt, "", len(evs)))
    return out


def skip_records(
    owner: str, now_ms: int, skipped: Mapping[str, int], frame_id: str = ""
) -> list[OutRecord]:
    """What a request lost, for its app to see: one row per reason, dated when it came,
    on the reserved count# metric `model.skipped_name(reason)`. Sent in the same durable
    append as the request's records, so each is counted exactly once."""
    out = []
    for reason, n in sorted(skipped.items()):
        if n:
            columns: dict[str, Column] = {
                "ts_ms": np.array([now_ms], np.int64),
                "value": np.array([n], np.float64),
                "kind": np.array([CUSTOM_KINDS["count"]], np.int64),  # encoded as <i1
            }
            value = codec.encode_batch(CUSTOM, owner, "", columns, skipped_name(reason), frame_id)
            out.append(OutRecord(CUSTOM.topic, partition_key(owner, ""), value))
    return out


def build_reference(
    owner: str,
    frames: list[bytes],
    now_ms: int,
    max_future_ms: int,
    max_age_ms: int = NO_LIMIT,
    lateness_ms: int = 0,
    frame_id: str = "",
) -> Parsed:
    """What `build` returns, computed one line at a time with `parse_message`."""
    out = Parsed()
    rows: _Rows = {}
    events: _Events = {}
    oldest, horizon = now_ms - max_age_ms, now_ms + max_future_ms
    where: dict[SeriesKey, list[int]] = {}
    for i, frame in enumerate(frames):
        for key in _take_record(parse_message(frame), oldest, horizon, out, rows, events):
            where.setdefault(key, []).append(i)
    batches: list[Piece] = [
        (np.array(where[key], np.int64), key, _columns(key[0], table))
        for key, table in rows.items()
    ]
    return _encode(owner, in_log_order(batches, lateness_ms), events, out, frame_id)


def _bulk(
    schema: Schema,
    kind: str,
    read: SampleColumns,
    process_types: list[str],
    oldest: int,
    horizon: int,
    out: Parsed,
    rows: _Rows,
    where: dict[SeriesKey, list[int]],
) -> list[Piece]:
    """Count lines read in bulk in `out`; (frame index of each row, key, columns) of each
    batch, with the rows of the same key read one by one (popped from `rows`) merged in."""
    ahead = read.ts_ms > horizon
    fresh = ~ahead & (read.ts_ms >= oldest)
    kept = int(np.count_nonzero(fresh))
    if kept < len(fresh):
        skewed = int(np.count_nonzero(ahead))
        if skewed:
            out.skipped["clock_skew"] += skewed
        if len(fresh) - kept - skewed:
            out.skipped["too_old"] += len(fresh) - kept - skewed
    if kept:
        out.lines[kind] += kept
    else:
        return []
    batches: list[Piece] = []
    for pt_id, pt in enumerate(process_types):
        chosen = fresh & (read.pt_id == pt_id) if len(process_types) > 1 else fresh
        index = read.index[chosen]
        if not len(index):
            continue
        columns = {"ts_ms": read.ts_ms[chosen]}
        columns.update((name, values[chosen]) for name, values in read.values.items())
        key = (schema, pt, "")
        table = rows.pop(key, None)
        if table is not None:  # lines of this key read one by one too
            index = np.concatenate((index, np.array(where[key], np.int64)))
            order = np.argsort(index, kind="stable")
            one_by_one = _columns(schema, table)
            columns = {
                name: np.concatenate((columns[name], one_by_one[name]))[order] for name in columns
            }
            index = index[order]
        batches.append((index, key, columns))
    return batches


def build(
    owner: str,
    frames: list[bytes],
    now_ms: int,
    max_future_ms: int,
    max_age_ms: int = NO_LIMIT,
    lateness_ms: int = 0,
    frame_id: str = "",
) -> Parsed:
    """Records, line counts and skip counts of one request's frames.

    The usual router and runtime-metrics lines are read in bulk (parse.bulkrouter,
    parse.bulkruntime), every other line by `parse_message`; the result equals
    `build_reference` exactly: batches in the order of their first line, rows in frame
    order, the same counts. Lines dated more than max_future_ms after now_ms are skipped
    as clock skew, and more than max_age_ms before it as too old. `lateness_ms` is the
    rollup's: batches are cut for log order only where it can matter (0: wherever the
    watermark minute may rise).
    """
    out = Parsed()
    rows: _Rows = {}
    events: _Events = {}
    where: dict[SeriesKey, list[int]] = {}  # frame index of each row in `rows`
    oldest, horizon = now_ms - max_age_ms, now_ms + max_future_ms
    router = read_router(frames)
    rest = router.rest
    runtime = read_runtime([frames[i] for i in rest] if len(rest) < len(frames) else frames)
    memory, load = runtime.memory, runtime.load
    if len(rest) < len(frames) and (len(memory.index) or len(load.index)):
        at = np.array(rest, np.int64)  # runtime read the rest only: back to frame indices
        memory = SampleColumns(at[memory.index], memory.ts_ms, memory.pt_id, memory.values)
        load = SampleColumns(at[load.index], load.ts_ms, load.pt_id, load.values)
    rest = [rest[i] for i in runtime.rest] if len(runtime.rest) < len(rest) else rest
    headers = read_headers([frames[i] for i in rest] if len(rest) < len(frames) else frames)
    for i, header in zip(rest, headers, strict=True):
        rec = read_message(frames[i]) if header is None else read_text(*header)
        if isinstance(rec, tuple):
            _take_event(rec, oldest, horizon, out, events)
            continue
        for key in _take_record(rec, oldest, horizon, out, rows, events):
            where.setdefault(key, []).append(i)
    if router.skipped:
        out.skipped["router_line"] += router.skipped
    if runtime.skipped:
        out.skipped["runtime_metrics"] += runtime.skipped
    requests = SampleColumns(
        router.index,
        router.ts_ms,
        router.pt_id,
        {
            "service_ms": router.service_ms,
            "status": router.status,
            "code": router.code,
            "connect_ms": router.connect_ms,
            "bytes": router.bytes,
        },
    )
    batches = _bulk(
        ROUTER, "router", requests, router.process_types, oldest, horizon, out, rows, where
    )
    types = runtime.process_types
    batches += _bulk(MEMORY, "memory", memory, types, oldest, horizon, out, rows, where)
    batches += _bulk(LOAD, "load", load, types, oldest, horizon, out, rows, where)
    for key, table in rows.items():
        batches.append((np.array(where[key], np.int64), key, _columns(key[0], table)))
    batches.sort(key=lambda batch: int(batch[0][0]))
    return _encode(owner, in_log_order(batches, lateness_ms), events, out, frame_id)
