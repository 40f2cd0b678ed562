"""The rollup core against a line-by-line recomputation, across crashes and replays."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drainpipe import accum, sketch
from drainpipe.bus import Position, TopicPartition
from drainpipe.model import (
    MINUTE_MS,
    ROUTER,
    Summary,
    late_name,
    partition_for,
    partition_key,
)
from drainpipe.rollup.position import decode_watermark, encode_watermark
from drainpipe.rollup.window import RollupCore

T0 = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS
LATENESS = 5 * MINUTE_MS
SKEW = 2 * MINUTE_MS
PARTITIONS = 2
SERIES = [("app-a", "web"), ("app-a", "worker"), ("app-b", "web"), ("app-c", "web")]


@dataclass(frozen=True)
class Line:
    series: int
    ts_ms: int
    service_ms: float
    status: int
    code: int


lines_st = st.lists(
    st.builds(
        Line,
        series=st.integers(0, len(SERIES) - 1),
        ts_ms=st.integers(0, 16 * MINUTE_MS).map(lambda t: T0 + t),
        service_ms=st.one_of(st.just(float("nan")), st.floats(0.5, 30_000.0)),
        status=st.sampled_from([200, 201, 304, 404, 500, 503, 0]),
        code=st.sampled_from([0, 0, 0, 12, 13]),
    ),
    min_size=1,
    max_size=120,
)

LogEntry = tuple[TopicPartition, int, int, list[Line]]  # (tp, offset, series, rows)
WindowKey = tuple[str, str, int]  # (owner, process_type, start_ms)


def raw_log(lines: list[Line], cuts: list[int]) -> list[LogEntry]:
    """Batches of consecutive lines of one series, with their (tp, offset), in log order."""
    out: list[LogEntry] = []
    offsets: dict[TopicPartition, int] = defaultdict(int)
    i = 0
    cut_iter = iter(cuts)
    while i < len(lines):
        size = next(cut_iter, 3)
        chunk = lines[i : i + size]
        i += size
        by_series: dict[int, list[Line]] = defaultdict(list)
        for ln in chunk:
            by_series[ln.series].append(ln)
        for s, rows in by_series.items():
            owner, pt = SERIES[s]
            tp = (ROUTER.topic, partition_for(partition_key(owner, pt), PARTITIONS))
            out.append((tp, offsets[tp], s, rows))
            offsets[tp] += 1
    return out


def columns(rows: list[Line]) -> dict[str, np.ndarray]:
    return {
        "ts_ms": np.array([r.ts_ms for r in rows], dtype="<i8"),
        "service_ms": np.array([r.service_ms for r in rows], dtype="<f8"),
        "status": np.array([r.status for r in rows], dtype="<i2"),
        "code": np.array([r.code for r in rows], dtype="<i2"),
    }


def recompute(log: list[LogEntry], skew: int = SKEW) -> dict[WindowKey, list[Line]]:
    """Line by line: which lines count, grouped by window. A line counts when its minute
    is within the lateness of its app and process type's newest time, and within the
    lateness and the skew of its partition's."""
    return recompute_with_drops(log, skew)[0]


def recompute_with_drops(
    log: list[LogEntry], skew: int = SKEW
) -> tuple[dict[WindowKey, list[Line]], dict[WindowKey, int]]:
    """`recompute`, and the lines dropped as late per (owner, process type, minute): the
    oldest minute the key still accepts, its bound or the partition's if that is later."""
    watermark: dict[TopicPartition, int] = {}
    key_watermark: dict[int, int] = {}
    kept: dict[WindowKey, list[Line]] = defaultdict(list)
    late: dict[WindowKey, int] = defaultdict(int)
    for tp, _, s, rows in log:
        for r in rows:
            wm = watermark[tp] = max(watermark.get(tp, r.ts_ms), r.ts_ms)
            key_wm = key_watermark[s] = max(key_watermark.get(s, r.ts_ms), r.ts_ms)
            start = r.ts_ms - r.ts_ms % MINUTE_MS
            owner, pt = SERIES[s]
            key_minute = key_wm - key_wm % MINUTE_MS
            bound = wm - wm % MINUTE_MS - LATENESS - skew
            if start >= key_minute - LATENESS and start >= bound:
                kept[(owner, pt, start)].append(r)
            else:
                late[(owner, pt, max(key_minute - LATENESS, bound))] += 1
    return kept, late


def store_write(
    store: dict[WindowKey, Summary],
    summaries: list[Summary],
    late: dict[WindowKey, Summary] | None = None,
) -> None:
    """Upsert with the n guard; late-drop counts go to `late` (or nowhere)."""
    for s in summaries:
        into = store if s.family == ROUTER.family else late
        assert into is not None or s.family == "custom." + late_name(ROUTER.family)
        if into is None:
            continue
        key = (s.owner, s.process_type, s.start_ms)
        if key not in into or s.n > into[key].n:
            into[key] = s


def check(store: Mapping[WindowKey, Summary], expected: Mapping[WindowKey, list[Line]]) -> None:
    assert set(store) == set(expected)
    for key, rows in expected.items():
        s = store[key]
        assert s.n == len(rows)
        service = np.array([r.service_ms for r in rows])
        service = service[~np.isnan(service)]
        st_ = s.stats.get("service_ms")
        if service.size == 0:
            assert st_ is None
        else:
            assert st_ is not None
            assert st_.count == service.size
            assert st_.min == service.min() and st_.max == service.max()
            assert st_.sum == pytest.approx(service.sum(), rel=1e-12)
            assert st_.sumsq == pytest.approx(float(np.dot(service, service)), rel=1e-12)
            assert s.sketches["service_ms"].wide() == sketch.from_values(service)
        classes: dict[str, int] = defaultdict(int)
        for r in rows:
            if r.status:
                classes[f"{r.status // 100}xx"] += 1
            if r.code:
                classes[f"H{r.code:02d}"] += 1
        assert s.counts == dict(classes)


@settings(max_examples=300, deadline=None)
@given(
    lines=lines_st,
    cuts=st.lists(st.integers(1, 9), max_size=60),
    flush_points=st.sets(st.integers(0, 60), max_size=20),
    crash_points=st.lists(st.integers(0, 60), max_size=4),
    duplicate=st.booleans(),
    polls=st.lists(st.integers(1, 8), max_size=30),
)
def test_any_batching_flushes_and_crashes_give_the_recomputed_store(
    lines: list[Line],
    cuts: list[int],
    flush_points: set[int],
    crash_points: list[int],
    duplicate: bool,
    polls: list[int],
) -> None:
    """Each step adds one poll of `polls[step]` log entries (1 once the list runs out)."""
    log = raw_log(lines, cuts)
    expected, expected_late = recompute_with_drops(log)
    store: dict[WindowKey, Summary] = {}  # a store with the n guard
    late: dict[WindowKey, Summary] = {}  # its late-drop counts
    topic: dict[WindowKey, Summary] = {}  # a compacted summary topic: the last version per key wins
    committed: dict[TopicPartition, Position] = {}

    def fresh() -> RollupCore:
        core = RollupCore(lateness_ms=LATENESS, skew_ms=SKEW)
        for tp in {entry[0] for entry in log}:
            core.restore(tp, committed.get(tp, Position(0)))
        return core

    def flush(core: RollupCore) -> None:
        summaries = core.flush()
        store_write(store, summaries, late)
        topic.update(
            ((x.owner, x.process_type, x.start_ms), x)
            for x in summaries
            if x.family == ROUTER.family
        )
        committed.update(core.positions())

    core = fresh()
    crashes = sorted(set(crash_points))
    step = 0
    i = 0
    while i < len(log):
        size = polls[step] if step < len(polls) else 1
        batch = [
            (tp, offset, ROUTER.family, *SERIES[s], columns(rows))
            for tp, offset, s, rows in log[i : i + size]
            if offset >= core.parts[tp].next_offset
        ]
        if size == 1 and batch:
            core.add(*batch[0])
        else:
            core.add_many(batch)
        if step in flush_points:
            flush(core)
        if crashes and step == crashes[0]:
            crashes.pop(0)
            core = fresh()  # state lost; resume from the committed positions
            # Replay the raw log from the earliest committed offset; with `duplicate`,
            # the whole log is offered again and offsets before the commit are skipped.
            i = (
                0
                if duplicate
                else min(
                    (j for j, e in enumerate(log) if e[1] >= core.parts[e[0]].next_offset),
                    default=len(log),
                )
            )
            step += 1
            continue
        i += size
        step += 1
    flush(core)
    check(store, expected)
    check(topic, expected)
    # Every line dropped as late is counted once, in its minute, whatever the crashes.
    assert {k: s.n for k, s in late.items()} == expected_late
    for s in late.values():
        assert s.stats["count"].sum == s.n


def test_late_rows_are_dropped_counted_and_do_not_move_the_watermark_back() -> None:
    core = RollupCore(lateness_ms=LATENESS)
    tp = (ROUTER.topic, 0)
    core.restore(tp, Position(0))
    rows = [Line(0, T0 + 10 * MINUTE_MS, 5.0, 200, 0), Line(0, T0, 7.0, 200, 0)]
    core.add(tp, 0, "router", "app-a", "web", columns(rows))
    out = core.flush()
    assert [(s.family, s.start_ms, s.n) for s in out] == [
        ("custom.@late.router", T0 + 5 * MINUTE_MS, 1),  # the app's own count of them
        ("router", T0 + 10 * MINUTE_MS, 1),
    ]
    assert core.dropped_late == {"router": 1}
    assert decode_watermark(core.positions()[tp].metadata) == T0 + 10 * MINUTE_MS


def test_commit_position_is_the_first_offset_of_the_oldest_open_window() -> None:
    core = RollupCore(lateness_ms=LATENESS)
    tp = (ROUTER.topic, 0)
    core.restore(tp, Position(40))
    core.add(tp, 40, "router", "a", "web", columns([Line(0, T0, 1.0, 200, 0)]))
    core.add(tp, 41, "router", "a", "web", columns([Line(0, T0 + MINUTE_MS, 1.0, 200, 0)]))
    core.flush()
    assert core.positions()[tp].offset == 40
    core.add(tp, 42, "router", "a", "web", columns([Line(0, T0 + 7 * MINUTE_MS, 1.0, 200, 0)]))
    core.flush()  # T0 and T0+1 closed: they are older than 5 minutes behind T0+7
    assert core.positions()[tp].offset == 42
    core.flush()
    keys = {("a", "web"): T0 + 7 * MINUTE_MS}  # its own bound is the tighter one
    assert core.positions()[tp] == Position(42, encode_watermark(T0 + 7 * MINUTE_MS, 43, keys))
    assert core.parts[tp].key_floor is None


def test_flush_returns_only_changed_windows_and_copies_them() -> None:
    core = RollupCore()
    tp = (ROUTER.topic, 0)
    core.add(tp, 0, "router", "a", "web", columns([Line(0, T0, 1.0, 200, 0)]))
    first = core.flush()
    assert len(first) == 1 and core.flush() == []
    core.add(tp, 1, "router", "a", "web", columns([Line(0, T0, 3.0, 200, 0)]))
    second = core.flush()
    assert first[0].n == 1 and second[0].n == 2
    merged = accum.merged([first[0]], T0, 60)
    assert merged is not None and merged.stats["service_ms"].max == 1.0


def test_bad_watermark_metadata_is_refused_with_its_value() -> None:
    with pytest.raises(ValueError, match="'offset=3' is not a rollup position"):
        decode_watermark("offset=3")
    with pytest.raises(ValueError, match="is not a rollup position"):
        decode_watermark('wm=5;next=3;keys=[["a", "web"]]')


def test_rows_replayed_after_a_restart_are_not_counted_as_late_again() -> None:
    tp = (ROUTER.topic, 0)
    rows = [T0 + 7 * MINUTE_MS, T0 + 3 * MINUTE_MS, T0 + 9 * MINUTE_MS]
    first = RollupCore(lateness_ms=LATENESS)
    first.restore(tp, Position(0))
    for offset, ts in enumerate(rows):
        first.add(tp, offset, "router", "a", "web", columns([Line(0, ts, 1.0, 200, 0)]))
    first.flush()  # T0+3 was counted, then its window closed (9 - 5 > 3)
    assert first.dropped_late == {}
    again = RollupCore(lateness_ms=LATENESS)
    again.restore(tp, first.positions()[tp])  # resumes at offset 0: T0+7 is still open
    for offset, ts in enumerate(rows):  # replay: T0+3 is dropped now, as it must be
        again.add(tp, offset, "router", "a", "web", columns([Line(0, ts, 1.0, 200, 0)]))
    assert again.dropped_late == {}  # ... but it was no late line
    again.add(tp, 3, "router", "a", "web", columns([Line(0, T0 + MINUTE_MS, 1.0, 200, 0)]))
    assert again.dropped_late == {"router": 1}  # a line that really is late


def test_commit_metadata_of_older_releases_still_restores() -> None:
    core = RollupCore()
    core.restore((ROUTER.topic, 0), Position(5, "wm=1795000000000"))
    assert core.parts[(ROUTER.topic, 0)].watermark_ms == 1_795_000_000_000


def test_commit_metadata_of_the_last_release_still_restores() -> None:
    core = RollupCore()
    core.restore((ROUTER.topic, 0), Position(5, "wm=1795000000000;next=9"))
    st_ = core.parts[(ROUTER.topic, 0)]
    assert (st_.watermark_ms, st_.counted_until, st_.key_watermarks) == (1_795_000_000_000, 9, {})
    assert st_.key_floor == 1_795_000_000_000  # every key: the partition's, as it judged


def test_after_an_upgrade_replay_closes_what_the_last_release_had_closed() -> None:
    """The last release closed windows 5 minutes behind the partition; the new partition
    bound is looser (plus the skew), so without the floor a replay would reopen them."""
    tp = (ROUTER.topic, 0)
    wm = T0 + 10 * MINUTE_MS
    core = RollupCore(lateness_ms=LATENESS, skew_ms=SKEW)
    core.restore(tp, Position(3, encode_watermark(wm, 5)))  # the old form: no keys
    # Offset 3 was read before: a row of T0+4, closed by the old rule (10 - 5 > 4).
    core.add(tp, 3, "router", "b", "web", columns([Line(0, T0 + 4 * MINUTE_MS, 1.0, 200, 0)]))
    core.add(tp, 4, "router", "b", "web", columns([Line(0, T0 + 9 * MINUTE_MS, 1.0, 200, 0)]))
    assert [(s.start_ms, s.n) for s in core.flush()] == [(T0 + 9 * MINUTE_MS, 1)]
    assert core.dropped_late == {}  # replayed: counted as late before the restart
    # The floor goes once the partition's own bound is as tight, and travels till then.
    assert ";floor=" in core.positions()[tp].metadata
    core.add(tp, 5, "router", "c", "web", columns([Line(0, wm + SKEW, 1.0, 200, 0)]))
    core.flush()
    assert core.parts[tp].key_floor is None


def test_key_watermarks_survive_a_restart_exactly() -> None:
    keys = {("app-a", "web"): T0 + 61_000, ("app-b", "we;b=x"): T0}
    core = RollupCore()
    core.restore((ROUTER.topic, 0), Position(5, encode_watermark(T0 + 90_000, 9, keys)))
    assert core.parts[(ROUTER.topic, 0)].key_watermarks == keys
