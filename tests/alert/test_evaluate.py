"""The pure judge: minute sequences in, notices out, with hypothesis over gaps, late
data, flapping, sensitivity edges, reminder periods and recovery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from drainpipe.alert import rules
from drainpipe.alert.evaluate import (
    FIRING,
    MINUTE_MS,
    NO_DATA,
    OK,
    REMINDER,
    RESOLVED,
    Notice,
    State,
    judge,
)
from drainpipe.alert.rules import Rule

T0 = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS


def rule(sensitivity: int = 5, renotify: int = 5, threshold: float = 500.0) -> Rule:
    return Rule(
        "r1", "shop", "owner", rules.metric("latency_p95"), threshold, "web", sensitivity, renotify
    )


def run(r: Rule, series: Sequence[float | None], state: State | None = None) -> list[Notice]:
    """Judge each minute of `series` in turn, values as known at the end."""
    values = {T0 + i * MINUTE_MS: v for i, v in enumerate(series)}
    state = state or State()
    out: list[Notice] = []
    for i in range(len(series)):
        state, notices = judge(r, state, T0 + i * MINUTE_MS, values)
        out += notices
    return out


def kinds(notices: list[Notice]) -> list[tuple[str, int]]:
    return [(n.state, (n.minute_ms - T0) // MINUTE_MS) for n in notices]


def test_fires_after_exactly_sensitivity_minutes_over() -> None:
    for n in (1, 5, 10):
        series: Sequence[float | None] = [100.0] * 3 + [900.0] * n + [100.0] * n
        got = kinds(run(rule(sensitivity=n, renotify=1440), series))
        assert got == [(FIRING, 3 + n - 1), (RESOLVED, 3 + 2 * n - 1)], n
        # one minute short never fires
        assert run(rule(sensitivity=n), [100.0] * 3 + [900.0] * (n - 1) + [100.0] * 3) == []


def test_the_threshold_itself_is_over_and_a_floor_is_below() -> None:
    assert kinds(run(rule(sensitivity=1), [500.0])) == [(FIRING, 0)]
    floor = Rule("r", "shop", "o", rules.metric("throughput_below"), 10.0, sensitivity=1)
    assert kinds(run(floor, [10.0, 9.0])) == [(FIRING, 1)]


def test_one_reminder_per_period_while_it_lasts() -> None:
    notices = run(rule(sensitivity=1, renotify=5), [900.0] * 16 + [100.0])
    assert kinds(notices) == [
        (FIRING, 0), (REMINDER, 5), (REMINDER, 10), (REMINDER, 15), (RESOLVED, 16),
    ]  # fmt: skip
    assert [n.value for n in notices] == [900.0] * 4 + [100.0]


def test_a_firing_rule_without_data_says_so_and_resolves_only_on_clear_data() -> None:
    series: list[float | None] = [900.0] * 5 + [None] * 5 + [100.0] * 5
    assert kinds(run(rule(), series)) == [(FIRING, 4), (NO_DATA, 9), (RESOLVED, 14)]
    # data that comes back over fires again
    series = [900.0] * 5 + [None] * 5 + [900.0] * 5
    assert kinds(run(rule(), series)) == [(FIRING, 4), (NO_DATA, 9), (FIRING, 14)]


def test_an_ok_rule_without_data_goes_quiet_silently() -> None:
    assert run(rule(), [100.0] * 5 + [None] * 20 + [100.0] * 5) == []


def test_late_data_counts_from_then_on_and_no_minute_is_judged_twice() -> None:
    r = rule(sensitivity=5, renotify=1440)
    values: dict[int, float | None] = {T0 + i * MINUTE_MS: 900.0 for i in range(5)}
    values[T0 + 2 * MINUTE_MS] = 100.0  # as first known: minute 2 was fine
    state = State()
    out: list[Notice] = []
    for i in range(5):
        state, notices = judge(r, state, T0 + i * MINUTE_MS, values)
        out += notices
    assert out == []
    values[T0 + 2 * MINUTE_MS] = 900.0  # late data: minute 2 was over after all
    assert judge(r, state, T0 + 4 * MINUTE_MS, values) == (state, [])  # judged already
    values[T0 + 5 * MINUTE_MS] = 900.0
    state, notices = judge(r, state, T0 + 5 * MINUTE_MS, values)
    assert kinds(notices) == [(FIRING, 5)] and state.status == FIRING


def test_flapping_around_the_threshold_neither_fires_nor_clears_on_one_minute() -> None:
    flapping: list[float | None] = [900.0, 100.0] * 20
    assert run(rule(sensitivity=5), flapping) == []
    got = kinds(run(rule(sensitivity=5, renotify=1440), [*([900.0] * 5), *flapping]))
    assert got == [(FIRING, 4)]  # and it stays firing: never five clear minutes in a row


# Over more often than not, so runs last long enough for reminders and recoveries.
VALUE = st.sampled_from([None, 100.0, 499.9, 500.0, 900.0, 900.0, 900.0, 900.0])


@settings(max_examples=400)
@given(
    series=st.lists(VALUE, max_size=60),
    sensitivity=st.sampled_from(rules.SENSITIVITIES),
    renotify=st.sampled_from(rules.RENOTIFY),
)
def test_notices_follow_the_rules_for_any_sequence(
    series: list[float | None], sensitivity: int, renotify: int
) -> None:
    r = rule(sensitivity, renotify)
    notices = run(r, series)
    status, last = OK, None
    for n in notices:
        i = (n.minute_ms - T0) // MINUTE_MS
        seen = series[max(0, i - sensitivity + 1) : i + 1]
        full = i + 1 >= sensitivity
        if n.state == FIRING:
            assert status != FIRING
            assert full and all(v is not None and v >= 500 for v in seen)
            status, last = FIRING, i
        elif n.state == REMINDER:
            assert status == FIRING and last is not None and i - last == renotify
            status, last = FIRING, i
        elif n.state == RESOLVED:
            # never a silent recovery, never a recovery on partial data
            assert status in (FIRING, NO_DATA) and full
            assert status != FIRING or (last is not None and i - last <= renotify)
            assert all(v is not None and v < 500 for v in seen)
            status = OK
        else:
            assert n.state == NO_DATA and status == FIRING
            assert full and all(v is None for v in seen)
            assert last is not None and i - last <= renotify
            status = NO_DATA
    if status == FIRING:  # no reminder missed at the end either
        assert last is not None and len(series) - 1 - last < renotify
    # and nothing was missed: a run of `sensitivity` over minutes is never left unreported
    for i in range(sensitivity - 1, len(series)):
        seen = series[i - sensitivity + 1 : i + 1]
        if all(v is not None and v >= 500 for v in seen):
            fired = [n for n in notices if n.state == FIRING and n.minute_ms <= T0 + i * MINUTE_MS]
            assert fired, (i, series)


@settings(max_examples=200)
@given(series=st.lists(VALUE, max_size=40), cut=st.integers(0, 40))
def test_a_restart_from_the_saved_state_tells_the_same(
    series: list[float | None], cut: int
) -> None:
    """The state is all there is: judging resumed from a saved state after minute `cut`
    gives exactly the notices of an uninterrupted run, no duplicate and none missed."""
    r = rule(sensitivity=5, renotify=5)
    values = {T0 + i * MINUTE_MS: v for i, v in enumerate(series)}
    state, first = State(), []
    for i in range(min(cut, len(series))):
        state, notices = judge(r, state, T0 + i * MINUTE_MS, values)
        first += notices
    saved = replace(state)
    rest = []
    for i in range(len(series)):  # a restarted evaluator replays from the start
        saved, notices = judge(r, saved, T0 + i * MINUTE_MS, values)
        rest += notices
    assert first + rest == run(r, series)


def test_a_firing_error_rule_whose_data_stops_says_no_data() -> None:
    from drainpipe.alert import values

    r = Rule("r", "shop", "o", rules.metric("errors:H12"), 5.0, sensitivity=1, renotify=1440)
    minutes = [values.value(r.metric, None) for _ in range(3)]  # the drain broke
    assert kinds(run(r, [9.0, *minutes])) == [(FIRING, 0), (NO_DATA, 1)]
