"""Read planning: which stored rows, of which tier, answer a chart of a range at a step.

Tier rows (`store.tiers`) are used only for whole tier intervals of settled hours; minutes
fill the edges and the hours not settled yet, so an answer is the same whether or not
settling has caught up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from drainpipe.model import Summary
from drainpipe.store import Store
from drainpipe.store.tiers import HOUR_MS, TIERS, hour_of


@dataclass(frozen=True, slots=True)
class Read:
    """One range read of a plan: rows of `period_s` starting in [start_ms, end_ms)."""

    period_s: int
    start_ms: int
    end_ms: int


def plan(start_ms: int, end_ms: int, step_s: int, unsettled: Iterable[int]) -> list[Read]:
    """The reads that give every minute of [start_ms, end_ms) exactly once, for a chart
    whose points are step_s apart and start at multiples of step_s.

    The tier used is the largest one whose period divides the step, so its rows never
    straddle two points. It covers only whole tier intervals inside the range that lie in
    settled hours; minutes fill the rest (the edges and the unsettled hours).
    """
    tier = max((t for t in TIERS if step_s % t == 0), default=None)
    if tier is None:
        return [Read(60, start_ms, end_ms)] if start_ms < end_ms else []
    t = tier * 1000
    lo = -(-start_ms // t) * t  # first whole interval
    hi = end_ms - end_ms % t
    if lo >= hi:
        return [Read(60, start_ms, end_ms)] if start_ms < end_ms else []
    skip = set(unsettled)
    reads: list[Read] = []

    def add(period_s: int, a: int, b: int) -> None:
        if a >= b:
            return
        last = reads[-1] if reads else None
        if last is not None and last.period_s == period_s and last.end_ms == a:
            reads[-1] = Read(period_s, last.start_ms, b)
        else:
            reads.append(Read(period_s, a, b))

    add(60, start_ms, lo)
    at = lo
    while at < hi:
        nxt = min(hour_of(at) + HOUR_MS, hi) if t < HOUR_MS else at + t
        add(60 if hour_of(at) in skip else tier, at, nxt)
        at = nxt
    add(60, hi, end_ms)
    return reads


def read(
    store: Store,
    owner: str,
    family: str,
    start_ms: int,
    end_ms: int,
    process_type: str | None,
    step_s: int,
) -> list[Summary]:
    """The summaries a chart of [start_ms, end_ms) at step_s needs, by `plan`."""
    out: list[Summary] = []
    # One series' read asks only its shard, so it is answered while another shard is away.
    series = None if process_type is None else (owner, process_type)
    for r in plan(start_ms, end_ms, step_s, store.unsettled_hours(start_ms, end_ms, series)):
        out.extend(
            store.read_summaries(owner, family, r.start_ms, r.end_ms, process_type, r.period_s)
        )
    return out
