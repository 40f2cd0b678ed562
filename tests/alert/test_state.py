"""The alerts database, on SQLite (the embedded default) and on PostgreSQL (scale-out):
the same answers from both."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drainpipe.alert.evaluate import Notice, State
from drainpipe.alert.rules import Rule, metric
from drainpipe.alert.state import AlertState, postgres_state
from tests.alert.test_worker import T0

M = 60_000


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], AlertState]]:
    opened: list[AlertState] = []
    if request.param == "sqlite":
        dsn = None
    else:
        factory: Callable[[], str] = request.getfixturevalue("pg_dsn_factory")
        dsn = factory()

    def open_() -> AlertState:
        s = AlertState(tmp_path / "alerts.sqlite") if dsn is None else postgres_state(dsn)
        opened.append(s)
        return s

    yield open_
    for s in opened:
        s.close()


def rule(rule_id: str, app: str = "shop") -> Rule:
    return Rule(rule_id, app, f"owner-{app}", metric("latency_p95"), 500.0, "web", 5, 60,
                webhook="https://h.example.com/x", webhook_secret="s",
                email=("a@example.com",))  # fmt: skip


def test_rules_are_added_listed_and_removed_and_the_version_moves(
    state: Callable[[], AlertState],
) -> None:
    s, other = state(), state()  # two processes on one database
    before = other.version()
    s.add(rule("r1"), T0)
    s.add(rule("r2", "blog"), T0 + 1)
    assert other.version() != before
    assert [x.rule.id for x in other.rules()] == ["r1", "r2"]
    assert [x.rule for x in other.rules("shop")] == [rule("r1")]
    assert other.rule("shop", "r2") is None and other.rule("blog", "r2") is not None
    seen = other.version()
    assert s.remove("shop", "r1") and not s.remove("shop", "r1")
    assert other.version() != seen
    assert [x.rule.id for x in other.rules()] == ["r2"]


def test_minute_values_keep_the_version_with_more_measurements(
    state: Callable[[], AlertState],
) -> None:
    s = state()
    s.put_values([("r1", T0, 100.0, 10), ("r1", T0 + M, None, 0)])
    s.put_values([("r1", T0, 50.0, 5), ("r1", T0 + M, 70.5, 3)])  # an older, smaller one
    assert s.values("r1", T0, T0 + M) == {T0: 100.0, T0 + M: 70.5}


def test_a_judgement_stores_its_state_and_notices_once_and_the_outbox_sends_them(
    state: Callable[[], AlertState],
) -> None:
    s = state()
    r = rule("r1")
    s.add(r, T0)
    s.put_values([("r1", T0 - 10 * M, 1.0, 1)])
    notices = [Notice("firing", T0, 900.0, 500.0)]
    events: list[dict[str, object]] = [{"t": "x", "kind": "deploy"}]
    after = State(status="firing", since_ms=T0, notified_ms=T0, judged_ms=T0)
    s.judged(r, after, notices, events, T0 + M, T0 - 5 * M)
    s.judged(r, after, notices, events, T0 + M, T0 - 5 * M)  # judged again: kept once
    assert s.state("r1") == after
    assert s.values("r1", 0, T0) == {}  # older than the window: pruned
    due = s.due(T0 + M)
    assert [(o.channel, o.notice, o.events) for o in due] == [
        ("webhook", notices[0], events), ("email", notices[0], events),
    ]  # fmt: skip
    s.sent(due[0].id, T0 + 2 * M)
    s.retry(due[1].id, T0 + 3 * M, "could not connect", give_up=False)
    assert s.due(T0 + 2 * M) == []
    (again,) = s.due(T0 + 3 * M)
    assert again.attempts == 1 and again.error is None
    s.retry(again.id, T0 + 4 * M, "timed out", give_up=True)
    assert s.due(T0 + 99 * M) == []
    (shown,) = s.history("shop", T0, T0 + M)  # one entry per notice, not per channel
    assert shown.notice == notices[0] and shown.sent_ms == T0 + 2 * M


def test_events_are_kept_once_and_pruned(state: Callable[[], AlertState]) -> None:
    s = state()
    row = ("o", T0, "deploy", "", "Deploy v2")
    s.put_events([row, row], T0 - M)
    s.put_events([("o", T0 + M, "restart", "web", "Restarting")], T0 - M)
    assert [e["kind"] for e in s.events("o", T0, T0 + 2 * M)] == ["deploy", "restart"]
    s.put_events([("o", T0 + 2 * M, "crash", "web", "H10")], T0 + M)
    assert [e["kind"] for e in s.events("o", 0, T0 + 3 * M)] == ["restart", "crash"]


def test_positions_are_saved_and_replaced(state: Callable[[], AlertState]) -> None:
    s = state()
    s.save_positions({("t", 0): 5, ("t", 1): 7})
    s.save_positions({("t", 0): 9})
    assert s.positions() == {("t", 0): 9, ("t", 1): 7}
