"""The read plan: every minute read once, tier rows only where whole and settled."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drainpipe.model import MINUTE_MS
from drainpipe.query import plan
from drainpipe.store import DAY_MS, tiers
from drainpipe.store.tiers import HOUR_MS, TIERS
from tests.store.test_tiers import H0


@given(
    start=st.integers(0, 30 * HOUR_MS),
    length=st.integers(0, 30 * HOUR_MS),
    step=st.sampled_from([60, 120, 300, 600, 1200, 1800, 3600, 7200, 86_400]),
    unsettled=st.sets(st.integers(0, 62).map(lambda h: h * HOUR_MS), max_size=20),
)
def test_a_plan_reads_every_minute_once_and_tiers_only_where_they_are_whole_and_settled(
    start: int, length: int, step: int, unsettled: set[int]
) -> None:
    end = start + length
    reads = plan.plan(start, end, step, unsettled)
    at = start
    for r in reads:
        assert r.start_ms == at < r.end_ms  # contiguous, no gap, no overlap, none empty
        at = r.end_ms
        if r.period_s != 60:
            assert r.period_s in TIERS and step % r.period_s == 0
            p = r.period_s * 1000
            assert r.start_ms % p == 0 and r.end_ms % p == 0  # whole intervals only
            assert not set(tiers.hours(r.start_ms, r.end_ms)) & unsettled
    assert at == (end if end > start else start)
    best = max((t for t in TIERS if step % t == 0), default=None)
    assert all(r.period_s in (60, best) for r in reads)


def test_a_seven_day_chart_at_two_hours_reads_hour_rows_and_the_unsettled_hour_in_minutes() -> None:
    end = H0 + 30 * MINUTE_MS
    start = end - 7 * DAY_MS
    lo = start - start % 7_200_000
    reads = plan.plan(lo, end, 7200, {H0})
    assert [(r.period_s, r.start_ms, r.end_ms) for r in reads] == [
        (3600, lo, H0),
        (60, H0, end),
    ]
