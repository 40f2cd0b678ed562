"""add_many over any split of a message list into polls equals add() one message at a time.

add() itself now runs add_many on one message, so both are also checked against
`add_reference`, the per-message implementation add_many replaced.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drainpipe import accum
from drainpipe.bus import Position, TopicPartition
from drainpipe.model import MINUTE_MS, Column, Summary
from drainpipe.rollup.columns import segmented_running_max
from drainpipe.rollup.position import encode_watermark
from drainpipe.rollup.state import PartitionState, Window
from drainpipe.rollup.window import RawMessage, RollupCore, layout_family

T0 = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS
LATENESS = 2 * MINUTE_MS
# ("mixed", 0) carries two families with different layouts, so one partition's watermark
# spans layouts; ("router", 1) is never restored and is created by its first message.
TPS: list[TopicPartition] = [("router", 0), ("router", 1), ("mixed", 0)]
SERIES = [("app-a", "web"), ("app-a", "worker"), ("app-b", "web")]
LAYOUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "router": (("ts_ms", "<i8"), ("service_ms", "<f8"), ("status", "<i2"), ("code", "<i2")),
    "dyno.memory": (("ts_ms", "<i8"), ("memory_rss", "<f8"), ("memory_swap", "<f8")),
    "bytes": (("ts_ms", "<i8"), ("bytes", "<i8")),  # an integer column gets a Stat too
}
FAMILIES_ON = {"router": ["router"], "mixed": ["dyno.memory", "bytes"]}

floats = st.one_of(
    st.floats(0.5, 5_000.0),
    st.sampled_from([0.0, -0.0, -3.0, 1e-12, 1e301, math.nan, math.inf, -math.inf]),
)
row_st = st.tuples(
    st.integers(-2 * MINUTE_MS, 9 * MINUTE_MS),  # ts offset from T0
    floats,
    floats,
    st.sampled_from([200, 204, 301, 404, 503, 0, 99, 100, 599, 600, -5]),  # status
    st.sampled_from([0, 0, 12, 13, 99]),  # H code
)
message_st = st.tuples(
    st.integers(0, len(TPS) - 1),
    st.integers(0, 1),  # family choice on that topic
    st.integers(0, len(SERIES) - 1),
    st.lists(row_st, max_size=12),
)


def to_messages(raw: list[Any], first_offset: dict[TopicPartition, int]) -> list[RawMessage]:
    offsets = dict(first_offset)
    out: list[RawMessage] = []
    for t, f, s, rows in raw:
        tp = TPS[t]
        families = FAMILIES_ON[tp[0]]
        family = families[f % len(families)]
        cols: dict[str, Any] = {}
        for j, (name, dtype) in enumerate(LAYOUTS[family]):
            if name == "ts_ms":
                values: list[Any] = [T0 + r[0] for r in rows]
            elif name in ("status", "code"):
                values = [r[3 if name == "status" else 4] for r in rows]
            elif np.dtype(dtype).kind == "i":
                values = [int(r[1]) if abs(r[1]) < 2**53 else 7 for r in rows]
            else:
                values = [r[1 + j % 2] for r in rows]
            cols[name] = np.array(values, dtype=dtype)
        out.append((tp, offsets.get(tp, 0), family, *SERIES[s], cols))
        offsets[tp] = offsets.get(tp, 0) + 1
    return out


def add_reference(
    core: RollupCore,
    tp: TopicPartition,
    offset: int,
    family: str,
    owner: str,
    process_type: str,
    columns: Mapping[str, Column],
) -> None:
    """The per-message add() that add_many replaced, as the oracle (with the per-key
    watermark of lateness judged per app and process type)."""
    st_ = core.parts.get(tp)
    if st_ is None:
        st_ = core.parts[tp] = PartitionState(next_offset=offset)
    st_.next_offset = offset + 1
    ts = columns["ts_ms"]
    if ts.size == 0:
        return
    p = core.period_ms
    running = np.maximum.accumulate(ts)
    if st_.watermark_ms is not None:
        running = np.maximum(running, st_.watermark_ms)
    key_running = np.maximum.accumulate(ts)
    key_wm = st_.key_watermarks.get((owner, process_type), st_.key_floor)
    if key_wm is not None:
        key_running = np.maximum(key_running, key_wm)
    starts = ts - ts % p
    keep = starts >= running - running % p - core.lateness_ms - core.skew_ms
    keep &= starts >= key_running - key_running % p - core.lateness_ms
    st_.watermark_ms = int(running[-1])
    st_.key_watermarks[owner, process_type] = int(key_running[-1])
    if not keep.all():
        dropped = int(keep.size - np.count_nonzero(keep)) if offset >= st_.counted_until else 0
        if dropped:
            core.dropped_late[family] = core.dropped_late.get(family, 0) + dropped
            by_owner = core.dropped_late_by_owner
            by_owner[owner] = by_owner.get(owner, 0) + dropped
            bound = running - running % p - core.lateness_ms - core.skew_ms
            for k, r in zip(key_running[~keep].tolist(), bound[~keep].tolist(), strict=True):
                lkey = (
                    owner,
                    process_type,
                    layout_family(family),
                    max(k - k % p - core.lateness_ms, r),
                )
                st_.late[lkey] = st_.late.get(lkey, 0) + 1
                st_.late_dirty.add(lkey)
        columns = {k: v[keep] for k, v in columns.items()}
        starts = starts[keep]
        if starts.size == 0:
            return
    for start in np.unique(starts).tolist():
        cols = {k: v[starts == start] for k, v in columns.items()}
        key = (owner, process_type, family, start)
        w = st_.windows.get(key)
        if w is None:
            summary = accum.new_summary(owner, process_type, family, p // 1000, start)
            w = st_.windows[key] = Window(summary, first_offset=offset)
        accum.add_columns(w.thawed(), cols)
        w.dirty = True


def comparable(s: Summary) -> tuple[Any, ...]:
    """Everything exact except sums, which may differ by rounding order."""
    stats = {k: (v.count, v.min, v.max) for k, v in s.stats.items()}
    sums = {
        k: (pytest.approx(v.sum, rel=1e-12), pytest.approx(v.sumsq, rel=1e-12))
        for k, v in s.stats.items()
    }
    return (
        s.owner,
        s.process_type,
        s.family,
        s.period_s,
        s.start_ms,
        s.n,
        stats,
        sums,
        s.sketches,
        s.counts,
    )


def state(core: RollupCore) -> tuple[Any, ...]:
    windows = {
        tp: {key: (w.first_offset, w.dirty) for key, w in st_.windows.items()}
        for tp, st_ in core.parts.items()
    }
    late = {tp: (dict(st_.late), set(st_.late_dirty)) for tp, st_ in core.parts.items()}
    return (
        core.positions(),
        dict(core.dropped_late),
        dict(core.dropped_late_by_owner),
        windows,
        late,
    )


@settings(max_examples=400, deadline=None)
@given(
    raw=st.lists(message_st, max_size=40),
    polls=st.lists(st.integers(1, 12), max_size=40),
    watermarks=st.lists(
        st.one_of(st.none(), st.integers(0, 6 * MINUTE_MS)), min_size=3, max_size=3
    ),
    flush_every_poll=st.booleans(),
)
def test_add_many_over_any_split_into_polls_equals_add_one_at_a_time(
    raw: list[Any], polls: list[int], watermarks: list[int | None], flush_every_poll: bool
) -> None:
    one, many = RollupCore(lateness_ms=LATENESS), RollupCore(lateness_ms=LATENESS)
    ref = RollupCore(lateness_ms=LATENESS)
    first_offset: dict[TopicPartition, int] = {}
    for tp, wm in zip(TPS, watermarks, strict=True):
        if tp != ("router", 1):
            first_offset[tp] = 10
            pos = Position(10, encode_watermark(None if wm is None else T0 + wm))
            one.restore(tp, pos)
            many.restore(tp, pos)
            ref.restore(tp, pos)
    messages = to_messages(raw, first_offset)
    i = k = 0
    while i < len(messages):
        size = polls[k] if k < len(polls) else len(messages)
        poll = messages[i : i + size]
        for m in poll:
            one.add(*m)
            with np.errstate(over="ignore"):  # 1e301 squared
                add_reference(ref, *m)
        many.add_many(poll)
        i, k = i + size, k + 1
        if flush_every_poll:
            expected = [comparable(s) for s in ref.flush()]
            assert [comparable(s) for s in one.flush()] == expected
            assert [comparable(s) for s in many.flush()] == expected
        assert state(one) == state(ref)
        assert state(many) == state(ref)
    expected = [comparable(s) for s in ref.flush()]
    assert [comparable(s) for s in one.flush()] == expected
    assert [comparable(s) for s in many.flush()] == expected
    assert state(many) == state(ref)


def test_add_many_of_nothing_or_empty_batches_only_moves_offsets() -> None:
    core = RollupCore()
    core.add_many([])
    assert core.parts == {}
    empty = {"ts_ms": np.array([], dtype="<i8"), "bytes": np.array([], dtype="<i8")}
    core.add_many([(("t", 0), 5, "bytes", "a", "web", empty)])
    assert core.positions() == {("t", 0): Position(6)} and core.flush() == []


@given(
    st.lists(
        st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=6), min_size=1, max_size=5
    ),
    st.lists(st.integers(-(2**62), 2**62), min_size=5, max_size=5),
)
def test_segmented_running_max_restarts_per_segment_even_when_shifting_would_overflow(
    segments: list[list[int]], seeds: list[int]
) -> None:
    values = np.array([v for seg in segments for v in seg], dtype=np.int64)
    lens = [len(seg) for seg in segments]
    starts = np.array(np.cumsum(lens) - lens, dtype=np.int64)
    got = segmented_running_max(values, starts, np.array(seeds[: len(segments)], dtype=np.int64))
    want: list[int] = []
    for seg, seed in zip(segments, seeds, strict=False):
        running = seed
        for v in seg:
            running = max(running, v)
            want.append(running)
    assert got.tolist() == want


def test_segmented_running_max_of_small_values_takes_the_shifted_path() -> None:
    values = np.array([5, 3, 9, 1, 2, 8, 0], dtype=np.int64)
    got = segmented_running_max(values, np.array([0, 3, 5]), np.array([0, 4, -1]))
    assert got.tolist() == [5, 5, 9, 4, 4, 8, 8]


def test_late_rows_of_one_family_are_counted_under_that_family() -> None:
    core = RollupCore(lateness_ms=LATENESS)
    msgs = to_messages(
        [(2, 0, 0, [(9 * MINUTE_MS, 1.0, 1.0, 0, 0)]), (2, 1, 0, [(0, 1.0, 1.0, 0, 0)] * 3)],
        {},
    )
    core.add_many(msgs)
    assert core.dropped_late == {"bytes": 3}
    counts: dict[str, int] = defaultdict(int)
    for s in core.flush():
        counts[s.family] += s.n
    # The app sees them too, in its reserved count# metric of that family's late rows.
    assert counts == {"dyno.memory": 1, "custom.@late.bytes": 3}
