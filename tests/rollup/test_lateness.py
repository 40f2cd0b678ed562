"""Lateness per app and process type: one app's lines never change what counts for another."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from drainpipe.bus import TopicPartition
from drainpipe.model import MINUTE_MS, ROUTER, Summary
from drainpipe.rollup.window import RollupCore
from tests.rollup.test_window import (
    LATENESS,
    SKEW,
    T0,
    Line,
    WindowKey,
    columns,
    store_write,
)


def _counted(core: RollupCore, log: list[tuple[str, int]], tp: TopicPartition) -> dict[Any, int]:
    """Rows counted per (owner, minute) when `log` [(owner, ts), ...] is added in order."""
    store: dict[WindowKey, Summary] = {}
    for offset, (owner, ts) in enumerate(log):
        core.add(tp, offset, "router", owner, "web", columns([Line(0, ts, 1.0, 200, 0)]))
        if offset % 3 == 0:
            store_write(store, core.flush())
    store_write(store, core.flush())
    return {(k[0], k[2]): s.n for k, s in store.items()}


def test_one_apps_lines_from_the_future_do_not_make_anothers_lines_late() -> None:
    """An app posting lines dated 295 s ahead (ingress allows 300) on every partition
    once made another app's lines 30 s old late."""
    tp = (ROUTER.topic, 0)
    now = T0 + 30 * MINUTE_MS + 10_000  # 10 s into a minute
    log = [("b", now - 30_000), ("a", now + 295_000), ("b", now - 30_000), ("b", now - 20_000)]
    core = RollupCore(lateness_ms=LATENESS)
    counted = _counted(core, log, tp)
    b_minute = (now - 30_000) - (now - 30_000) % MINUTE_MS
    assert counted[("b", b_minute)] == 3
    assert core.dropped_late == {}


@settings(max_examples=300, deadline=None)
@given(
    mine=st.lists(st.integers(0, 20 * MINUTE_MS), min_size=1, max_size=30),
    theirs=st.lists(st.tuples(st.integers(0, 40), st.integers(-20 * MINUTE_MS, SKEW)), max_size=30),
)
def test_no_interleaving_of_another_apps_lines_changes_what_counts_for_an_app(
    mine: list[int], theirs: list[tuple[int, int]]
) -> None:
    """The other app's lines are at most the skew ahead of this app's newest line so
    far (ingress refuses lines further ahead of the wall clock than that)."""
    tp = (ROUTER.topic, 0)
    alone = _counted(
        RollupCore(lateness_ms=LATENESS, skew_ms=SKEW), [("b", T0 + t) for t in mine], tp
    )
    log: list[tuple[str, int]] = []
    newest = T0 + mine[0]
    inserts = sorted(theirs)
    for i, t in enumerate(mine):
        while inserts and inserts[0][0] <= i:
            _, ahead = inserts.pop(0)
            log.append(("a", newest + ahead))
        newest = max(newest, T0 + t)
        log.append(("b", T0 + t))
    log += [("a", newest + ahead) for _, ahead in inserts]
    core = RollupCore(lateness_ms=LATENESS, skew_ms=SKEW)
    together = _counted(core, log, tp)
    assert {k: n for k, n in together.items() if k[0] == "b"} == alone
