"""Hour tiers: settling in both stores, and tiered charts equal to minute charts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drainpipe import accum, codec
from drainpipe.clock import FixedClock
from drainpipe.model import MINUTE_MS, ROUTER, Summary
from drainpipe.query import downsample, plan
from drainpipe.store import DAY_MS, Store, day_of, tiers
from drainpipe.store import postgres as postgres_store
from drainpipe.store import sqlite as sqlite_store
from drainpipe.store.sqlite import SqliteStore
from drainpipe.store.tiers import HOUR_MS, TIERS
from tests.conftest import FIXED_NOW_MS

DAY = day_of(FIXED_NOW_MS)
H0 = DAY * DAY_MS + 10 * HOUR_MS  # 10:00 UTC
# The stores' clock (the `clock` fixture) shows 16:00 of that day while the tests write.
assert H0 + 5 * HOUR_MS < FIXED_NOW_MS < H0 + 7 * HOUR_MS
LATER = H0 + 10 * DAY_MS  # a "now" by which every test hour is due


# -- the stores ----------------------------------------------------------------------------


rng = np.random.default_rng(11)


def minute(owner: str, pt: str, start_ms: int, requests: int) -> Summary:
    s = accum.new_summary(owner, pt, ROUTER.family, 60, start_ms)
    accum.add_columns(
        s,
        {
            "ts_ms": np.full(requests, start_ms, dtype=np.int64),
            "service_ms": np.round(rng.lognormal(3.5, 1.2, requests)),
            "status": rng.choice(np.array([200, 200, 304, 404, 503], dtype=np.int16), requests),
            "code": np.where(rng.random(requests) < 0.1, 12, 0).astype(np.int16),
        },
    )
    return s


def write(store: Store, summaries: list[Summary]) -> None:
    store.write_summaries([codec.encoded(s) for s in summaries])


def traffic(hours: int, series: list[tuple[str, str]]) -> list[Summary]:
    """Minutes of `hours` hours from H0, with gaps (minutes with no requests)."""
    return [
        minute(owner, pt, H0 + m * MINUTE_MS, int(rng.integers(1, 30)))
        for m in range(hours * 60)
        for owner, pt in series
        if rng.random() < 0.8
    ]


SERIES = [("app-a", "web"), ("app-a", "worker"), ("app-b", "web")]


def same_chart(a: object, b: object) -> bool:
    """Equal but for float sums added in another order."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_chart(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_chart(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
    return type(a) is type(b) and a == b


def chart(store: Store, owner: str, start: int, end: int, step: int, tiered: bool) -> object:
    metrics = ["router.latency", "router.status", "router.errors"]
    lo = start - start % (step * 1000)
    rows = (
        plan.read(store, owner, ROUTER.family, lo, end, None, step)
        if tiered
        else store.read_summaries(owner, ROUTER.family, lo, end)
    )
    return [downsample.series(m, rows, step) for m in metrics]


def test_settling_builds_tier_rows_equal_to_merging_the_minutes(store: Store) -> None:
    minutes = traffic(3, SERIES)
    write(store, minutes)
    assert store.unsettled_hours(H0, H0 + 3 * HOUR_MS) == {H0, H0 + HOUR_MS, H0 + 2 * HOUR_MS}
    assert store.settle(H0 + HOUR_MS) == 0  # the first hour is not closed yet
    assert store.settle(LATER) == 3
    assert store.unsettled_hours(H0, H0 + 3 * HOUR_MS) == set()
    for owner, pt in SERIES:
        mine = [s for s in minutes if (s.owner, s.process_type) == (owner, pt)]
        for period in TIERS:
            got = store.read_summaries(owner, ROUTER.family, H0, H0 + 3 * HOUR_MS, pt, period)
            want = tiers.merge_period(mine, period)
            assert [s.start_ms for s in got] == sorted(s.start_ms for s in want)
            for g, w in zip(got, sorted(want, key=lambda s: s.start_ms), strict=True):
                assert (g.n, g.counts, g.period_s) == (w.n, w.counts, period)
                assert g.sketches["service_ms"].wide() == w.sketches["service_ms"].wide()
                gs, ws = g.stats["service_ms"], w.stats["service_ms"]
                assert (gs.count, gs.min, gs.max) == (ws.count, ws.min, ws.max)
                assert math.isclose(gs.sum, ws.sum, rel_tol=1e-12)


def test_settling_a_few_series_at_a_time_builds_the_same_rows(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each store hands settling its rows in groups (one owner, or one owner and family,
    each); the tier rows are those of the test above."""
    monkeypatch.setattr(sqlite_store, "SETTLE_GROUP", 1)
    monkeypatch.setattr(postgres_store, "SETTLE_ROWS", 1)
    groups: list[int] = []
    real = tiers._merged_reading

    def counting(read: tiers.Reader, source_s: int, period_s: int, start_ms: int) -> list[bytes]:
        def counted(*span: int) -> list[list[bytes]]:
            got = [list(g) for g in read(*span)]
            groups.append(len(got))
            return got

        return real(counted, source_s, period_s, start_ms)

    monkeypatch.setattr(tiers, "_merged_reading", counting)
    test_settling_builds_tier_rows_equal_to_merging_the_minutes(store)
    assert max(groups) >= 2


def test_a_reader_that_splits_a_series_over_groups_is_refused() -> None:
    rows = [
        codec.encode_summaries([minute("app-a", "web", H0 + m * MINUTE_MS, 10)])[0]
        for m in range(2)
    ]

    def split(period_s: int, start_ms: int, end_ms: int) -> list[list[bytes]]:
        return [[rows[0]], [rows[1]]]

    with pytest.raises(ValueError, match="split the rows of series"):
        tiers.build_hour(split, lambda rows: None, H0)


def test_a_late_write_unsettles_its_hour_until_it_is_built_again(store: Store) -> None:
    write(store, traffic(2, SERIES))
    store.settle(LATER)
    hour2 = (H0 + HOUR_MS, H0 + 2 * HOUR_MS)
    have = store.read_summaries("app-a", ROUTER.family, *hour2, "web", 3600)
    write(store, [minute("app-a", "web", H0 + 90 * MINUTE_MS, 5000)])  # a backfill into hour 2
    assert store.unsettled_hours(H0, H0 + 2 * HOUR_MS) == {H0 + HOUR_MS}
    # The chart reads the unsettled hour's minutes, so it already shows the late write.
    assert same_chart(
        chart(store, "app-a", H0, H0 + 2 * HOUR_MS, 3600, tiered=True),
        chart(store, "app-a", H0, H0 + 2 * HOUR_MS, 3600, tiered=False),
    )
    assert store.settle(LATER) == 1
    again = store.read_summaries("app-a", ROUTER.family, *hour2, "web", 3600)
    assert again[0].n > have[0].n


def test_a_write_during_settling_keeps_the_hour_unsettled(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(store, traffic(1, SERIES))
    real_build = tiers.build_hour
    raced = minute("app-b", "web", H0 + 5 * MINUTE_MS, 1000)

    def build_while_a_sink_writes(
        read: tiers.Reader, write_rows: tiers.Writer, hour_ms: int
    ) -> list[codec.EncodedSummary]:
        rows = real_build(read, write_rows, hour_ms)
        write(store, [raced])  # lands after the minutes were read, before the tiers are
        return rows

    monkeypatch.setattr(tiers, "build_hour", build_while_a_sink_writes)
    assert store.settle(LATER) == 1
    assert store.unsettled_hours(H0, H0 + HOUR_MS) == {H0}  # the race was noticed
    monkeypatch.setattr(tiers, "build_hour", real_build)
    assert store.settle(LATER) == 1
    assert store.unsettled_hours(H0, H0 + HOUR_MS) == set()
    (hour,) = store.read_summaries("app-b", ROUTER.family, H0, H0 + HOUR_MS, "web", 3600)
    assert hour.n == sum(
        s.n for s in store.read_summaries("app-b", ROUTER.family, H0, H0 + HOUR_MS, "web")
    )


def test_an_hour_still_being_written_is_not_settled_until_it_is_quiet(
    store: Store, clock: FixedClock
) -> None:
    write(store, traffic(1, SERIES[:1]))
    # Written just now (the store's clock), so not quiet yet though the hour is long closed.
    now = clock.now_ms()
    assert store.settle(now) == 0
    assert store.settle(now + tiers.QUIET_MS + 1000) == 1


_charted: list[SqliteStore] = []


def charted_store() -> SqliteStore:
    """Five hours of three series: hours 1-2 settled, hour 1 unsettled again by a late
    write, hours 3-5 unsettled (built once for every example)."""
    if not _charted:
        import tempfile

        store = SqliteStore(Path(tempfile.mkdtemp()) / "store.db", FixedClock(FIXED_NOW_MS))
        minutes = traffic(5, SERIES)
        write(store, [s for s in minutes if s.start_ms < H0 + 2 * HOUR_MS])
        store.settle(LATER)
        write(store, [s for s in minutes if s.start_ms >= H0 + 2 * HOUR_MS])
        write(store, [minute("app-a", "web", H0 + 30 * MINUTE_MS, 2000)])
        _charted.append(store)
    return _charted[0]


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(H0 - HOUR_MS, H0 + 5 * HOUR_MS),
    length=st.integers(MINUTE_MS, 6 * HOUR_MS),
    step=st.sampled_from([60, 300, 600, 1800, 3600, 7200]),
    owner=st.sampled_from(["app-a", "app-b"]),
)
def test_tiered_charts_equal_minute_charts_whatever_has_settled(
    start: int, length: int, step: int, owner: str
) -> None:
    store = charted_store()
    assert store.unsettled_hours(H0, H0 + 5 * HOUR_MS) == {
        H0,
        H0 + 2 * HOUR_MS,
        H0 + 3 * HOUR_MS,
        H0 + 4 * HOUR_MS,
    }
    end = start + length
    assert same_chart(
        chart(store, owner, start, end, step, tiered=True),
        chart(store, owner, start, end, step, tiered=False),
    )
