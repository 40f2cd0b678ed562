"""Judging a rule minute by minute: a pure state machine from minute values to notices.

A minute is judged once, when it is closed; its verdict looks at the rule's last
`sensitivity` minutes as they are known then, so data that arrived late for an earlier
minute counts from then on, and no judged minute is judged again.

- ok -> firing when every one of the window's minutes meets the condition;
- firing -> resolved when every one of them is clear (the same sensitivity both ways,
  so a value flapping around the threshold neither fires nor clears on one minute);
- firing -> no data when the window has no data at all: a firing rule never goes
  quiet without saying so, and it says "resolved" only once data shows it clear;
- a reminder while firing, at most once per `renotify` minutes after the last notice.

A rule that was ok and sees no data enters "no data" without a notice (an idle app at
night is not news); `throughput_below` reads a minute without requests as 0, so traffic
that stops fires it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from drainpipe.alert.rules import Rule
from drainpipe.model import MINUTE_MS as MINUTE_MS

OK, FIRING, NO_DATA = "ok", "firing", "no_data"
REMINDER, RESOLVED = "reminder", "resolved"


@dataclass(frozen=True, slots=True)
class State:
    """What a rule remembers between minutes, per (rule, process type)."""

    status: str = OK
    since_ms: int | None = None  # the minute the current status began
    notified_ms: int | None = None  # the minute of the last firing or reminder notice
    judged_ms: int | None = None  # the last minute judged
    was_firing: bool = False  # in NO_DATA: whether it was firing before the data stopped


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification: a state the rule reports, of a judged minute."""

    state: str  # firing, reminder, resolved or no_data
    minute_ms: int
    value: float | None
    threshold: float


def window(rule: Rule, minute_ms: int, values: Mapping[int, float | None]) -> list[float | None]:
    """The rule's values of its last `sensitivity` minutes up to minute_ms, oldest first."""
    return [values.get(minute_ms - i * MINUTE_MS) for i in range(rule.sensitivity - 1, -1, -1)]


def judge(
    rule: Rule, state: State, minute_ms: int, values: Mapping[int, float | None]
) -> tuple[State, list[Notice]]:
    """The state after judging `minute_ms` and what to tell; minutes already judged (at
    or before `state.judged_ms`) change nothing."""
    if state.judged_ms is not None and minute_ms <= state.judged_ms:
        return state, []
    seen = window(rule, minute_ms, values)
    now = values.get(minute_ms)
    over = all(v is not None and rule.over(v) for v in seen)
    clear = all(v is not None and not rule.over(v) for v in seen)
    empty = all(v is None for v in seen)
    judged = replace(state, judged_ms=minute_ms)

    def notice(kind: str) -> Notice:
        return Notice(kind, minute_ms, now, rule.threshold)

    if state.status == FIRING:
        if clear:
            return State(OK, minute_ms, None, minute_ms), [notice(RESOLVED)]
        if empty:
            return State(NO_DATA, minute_ms, None, minute_ms, was_firing=True), [notice(NO_DATA)]
        last = state.notified_ms if state.notified_ms is not None else minute_ms
        if minute_ms - last >= rule.renotify * MINUTE_MS:
            return replace(judged, notified_ms=minute_ms), [notice(REMINDER)]
        return judged, []
    if over:
        return State(FIRING, minute_ms, minute_ms, minute_ms), [notice(FIRING)]
    if state.status == NO_DATA:
        if clear:
            notices = [notice(RESOLVED)] if state.was_firing else []
            return State(OK, minute_ms, None, minute_ms), notices
        return judged, []
    if empty:
        return State(NO_DATA, minute_ms, None, minute_ms), []
    return judged, []
