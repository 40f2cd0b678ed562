"""Lateness is judged in the order lines arrived, whatever columns a line feeds.

A drain request is parsed into one bus message per (measurement type, process type,
series); these tests roll such requests up exactly as the rollup worker does (decode,
`RollupCore`) and hold the result to the definition: the same as if every line had come
in a request of its own, one after another.
"""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from drainpipe import accum, codec
from drainpipe.ingest import records
from drainpipe.model import CUSTOM, SCHEMA_BY_TOPIC, partition_for
from drainpipe.rollup.window import RawMessage, RollupCore
from tests.support import drains

MIN = 60_000
T = 1_795_017_600_000  # 2026-11-18 16:00 UTC, a whole minute
LATENESS = 5 * MIN


def roll(
    requests: list[list[str]], partitions: int = 1, build_lateness_ms: int = LATENESS
) -> tuple[Counter[tuple[str, ...]], int]:
    """Rows counted per (family, process type, minute, what), and rows dropped as late,
    of these requests (lists of syslog lines) rolled up in order; `build_lateness_ms` is
    what records.build is told (ingress tells it the rollup's)."""
    core = RollupCore(lateness_ms=LATENESS)
    offsets: Counter[tuple[str, int]] = Counter()
    for lines in requests:
        frames = [line.encode() for line in lines]
        parsed = records.build(
            "app", frames, T + 60 * MIN, 300_000, records.NO_LIMIT, build_lateness_ms
        )
        messages: list[RawMessage] = []
        for rec in parsed.records:
            if rec.topic not in SCHEMA_BY_TOPIC:
                continue  # events: not rolled up
            schema = SCHEMA_BY_TOPIC[rec.topic]
            owner, pt, cols, series, _ = codec.decode_series(schema, rec.value)
            family = schema.family
            if schema is CUSTOM:
                family, cols = f"custom.{series}", accum.custom_columns(cols)
            tp = (rec.topic, partition_for(rec.key, partitions))
            messages.append((tp, offsets[tp], family, owner, pt, cols))
            offsets[tp] += 1
        core.add_many(messages)
    counted: Counter[tuple[str, ...]] = Counter()
    for s in core.flush():
        counted[(s.family, s.process_type, str(s.start_ms), "n")] += s.n
        for name, stat in s.stats.items():
            counted[(s.family, s.process_type, str(s.start_ms), name)] += stat.count
    return counted, sum(core.dropped_late.values())


def test_in_order_lines_that_feed_two_metrics_are_all_counted() -> None:
    """30 app lines a minute apart, 40 to 11 minutes before the last, in one request: each
    line's count# and measure# are counted (measure# lost 24 of 30 when each metric's
    message was judged after the other's whole batch)."""
    lines = [
        drains.event(T + m * MIN, "app", "web.1", "count#orders=1 measure#db.query=5ms")
        for m in range(30)
    ]
    counted, dropped = roll([lines])
    assert dropped == 0
    orders = sum(n for k, n in counted.items() if k[0] == "custom.orders" and k[3] == "count")
    queries = sum(n for k, n in counted.items() if k[0] == "custom.db.query" and k[3] == "measure")
    assert (orders, queries) == (30, 30)


def test_router_lines_of_two_process_types_on_one_partition_are_judged_in_line_order() -> None:
    """web and worker lines interleaved, a minute apart: on one partition, the worker's
    batch judged after the web batch would meet a watermark 29 minutes ahead."""
    lines = [
        drains.router(T + m * MIN, 10, 200, dyno="web.1" if m % 2 else "worker.1")
        for m in range(30)
    ]
    counted, dropped = roll([lines])
    assert dropped == 0
    assert sum(n for k, n in counted.items() if k[3] == "n") == 30


def test_a_process_type_alone_on_its_partition_is_judged_by_its_own_lines() -> None:
    """web sets the topic's newest minute, but worker, on another partition, has two
    series whose watermark rises inside that minute: cut per topic alone, its count#y line
    met a watermark 4 minutes later than its own lines had made it."""
    lines = [
        drains.event(T + 5 * MIN, "app", "web.1", "count#z=1"),
        drains.event(T, "app", "worker.1", "count#x=1"),
        drains.event(T - 4 * MIN, "app", "worker.1", "count#y=1"),
        drains.event(T + 4 * MIN, "app", "worker.1", "count#x=1"),
    ]
    for partitions in (1, 2, 8):
        for lateness in (0, LATENESS):
            assert roll([lines], partitions, lateness) == roll([[x] for x in lines], partitions)


def test_router_lines_of_three_process_types_on_two_partitions_count_as_if_alone() -> None:
    lines = [
        drains.router(T + 5 * MIN, 10, 200, dyno="web.1"),
        drains.router(T, 10, 200, dyno="worker.1"),
        drains.router(T - 4 * MIN, 10, 200, dyno="clock.1"),
        drains.router(T + 4 * MIN, 10, 200, dyno="worker.1"),
        drains.router(T - 3 * MIN, 10, 200, dyno="clock.1"),
    ]
    for partitions in (2, 4, 8):
        assert roll([lines], partitions) == roll([[x] for x in lines], partitions)


def _line(kind: str, ts: int) -> str:
    if kind == "router":
        return drains.router(ts, 12, 200)
    if kind == "worker":
        return drains.router(ts, 12, 503, dyno="worker.1", code="H12")
    if kind == "clock":
        return drains.router(ts, 30, 200, dyno="clock.1")
    if kind.startswith("worker "):
        return drains.event(ts, "app", "worker.1", kind.removeprefix("worker "))
    if kind == "memory":
        return drains.memory(ts, "web.1", 120.0, 100.0, 0.0, 512.0)
    if kind == "load":
        return drains.load(ts, "worker.2", 0.5)
    return drains.event(ts, "app", "web.1", kind)


KINDS = st.sampled_from(
    [
        "router",
        "worker",
        "clock",
        "memory",
        "load",
        "count#orders=1",
        "measure#db.query=5ms",
        "count#orders=1 measure#db.query=5ms sample#depth=3",
        "sample#depth=4 count#signups=2",
        "worker count#orders=1",
        "worker measure#db.query=5ms count#jobs=1",
    ]
)


def _split(lines: list[str], cuts: list[int]) -> list[list[str]]:
    edges = sorted({c % (len(lines) + 1) for c in cuts} | {0, len(lines)})
    return [lines[a:b] for a, b in itertools.pairwise(edges) if b > a]


# Up to 40 lines of any mix, cut into requests anywhere, on 1, 2 or 8 partitions.
MIXES = st.lists(KINDS, min_size=1, max_size=40)
CUTS = st.lists(st.integers(0, 40), max_size=5)
PARTITIONS = st.sampled_from([1, 2, 8])
BUILD_LATENESS = st.sampled_from([0, LATENESS])


@settings(max_examples=150, deadline=None)
@given(
    MIXES,
    st.lists(st.integers(0, 3 * MIN), min_size=40, max_size=40),
    CUTS,
    PARTITIONS,
    BUILD_LATENESS,
)
def test_in_order_input_drops_nothing_whatever_the_mix_and_split(
    kinds: list[str], gaps: list[int], cuts: list[int], partitions: int, lateness: int
) -> None:
    ts, lines = T, []
    for kind, gap in zip(kinds, gaps, strict=False):
        ts += gap
        lines.append(_line(kind, ts))
    counted, dropped = roll(_split(lines, cuts), partitions, lateness)
    assert dropped == 0
    assert sum(n for k, n in counted.items() if k[3] == "n") >= len(lines)


@settings(max_examples=150, deadline=None)
@given(
    MIXES,
    st.lists(st.integers(0, 40 * MIN), min_size=40, max_size=40),
    CUTS,
    PARTITIONS,
    BUILD_LATENESS,
)
def test_any_input_counts_as_if_each_line_came_alone(
    kinds: list[str], offsets: list[int], cuts: list[int], partitions: int, lateness: int
) -> None:
    """Out of order too: what is counted and what is dropped as late equal a rollup of
    the same lines sent one request a line."""
    lines = [_line(kind, T + o) for kind, o in zip(kinds, offsets, strict=False)]
    got = roll(_split(lines, cuts), partitions, lateness)
    assert got == roll([[line] for line in lines], partitions)
