"""Vectorized poll aggregation: the kept rows of one column layout to per-window partials.

A poll's rows arrive as concatenated columns plus, per row, its window start and the call
index of its message. Consecutive rows of one message and one window form a run, found
without sorting or copying; runs are grouped by (series, window start) with one lexsort
over runs (a few per message, not one per row); every column is then reduced twice with
`reduceat`, rows to runs and runs to groups. Router counts are built for all groups at
once from one combined (group, class) key per row, and sketches likewise, by the caller,
with `sketch.from_groups`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from drainpipe.accum import SKETCHED
from drainpipe.model import Column, FloatArray, IntArray, Stat

NOT_STATS = frozenset({"ts_ms", "status", "code"})
CLASS_NAMES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


def segmented_running_max(values: IntArray, seg_starts: IntArray, seeds: IntArray) -> IntArray:
    """Running maximum of `values` restarted at each segment start and seeded per segment.

    Each segment is shifted above the previous one so that one `np.maximum.accumulate`
    never carries a maximum across a segment boundary; when the shifted values could
    overflow int64, each segment is accumulated on its own.
    """
    n = values.size
    seg_lens = np.diff(np.append(seg_starts, n))
    lo = min(int(values.min()), int(seeds.min()))
    span = max(int(values.max()), int(seeds.max())) - lo + 1
    if span * seg_starts.size < 1 << 62:
        shift = np.arange(seg_starts.size, dtype=np.int64) * span
        shifted = (values - lo) + np.repeat(shift, seg_lens)
        shifted[seg_starts] = np.maximum(shifted[seg_starts], (seeds - lo) + shift)
        running = np.maximum.accumulate(shifted)
        running -= np.repeat(shift, seg_lens)
        running += lo
        return running
    out = np.empty_like(values)
    for a, length, seed in zip(seg_starts.tolist(), seg_lens.tolist(), seeds.tolist(), strict=True):
        seg = np.maximum.accumulate(values[a : a + length])
        out[a : a + length] = np.maximum(seg, seed)
    return out


@dataclass(slots=True)
class Partials:
    """Per-group partial aggregates; groups are (series, window start) pairs."""

    series: list[int] = field(default_factory=list)
    start_ms: list[int] = field(default_factory=list)
    first_msg: list[int] = field(default_factory=list)  # call index of its first message
    n: list[int] = field(default_factory=list)
    stats: dict[str, list[Stat | None]] = field(default_factory=dict)  # None: no finite value
    # Sketched columns: values and group of each row, for `sketch.from_groups`, which the
    # caller runs once the groups' windows (and so their sketches so far) are known.
    sketch_rows: dict[str, tuple[FloatArray, IntArray]] = field(default_factory=dict)
    # Router counts as parallel lists (group, name, n): status classes, then H codes.
    counts: tuple[list[int], list[str], list[int]] = field(default_factory=lambda: ([], [], []))


@dataclass(slots=True)
class Runs:
    """Rows cut into runs (consecutive rows of one message and window) and runs into groups."""

    starts: IntArray  # first row of each run
    lengths: IntArray
    order: IntArray  # runs sorted by group, stably
    group_starts: IntArray  # where each group begins in `order`
    group_of_run: IntArray

    def reduce(self, ufunc: np.ufunc, per_row: npt.NDArray[Any]) -> list[Any]:
        """ufunc over each group's rows: rows to runs, then runs to groups."""
        per_run = ufunc.reduceat(per_row, self.starts)
        return ufunc.reduceat(per_run[self.order], self.group_starts).tolist()  # type: ignore[no-any-return]

    def group_of_row(self) -> IntArray:
        return np.repeat(self.group_of_run, self.lengths)


def aggregate(
    columns: Mapping[str, Column],
    start_ms: IntArray,
    msg: IntArray,
    msg_series: IntArray,
    msg_call: IntArray,
) -> Partials:
    """Partials of kept rows, given each row's window start and message, and each
    message's series and call index (its position in the poll, in log order per series).

    Within a group, stats and sketches equal those of `accum.add_columns` over the
    group's rows (sums up to rounding order); counts are listed status classes first,
    then H codes, each in ascending group order.
    """
    n = start_ms.size
    out = Partials()
    if n == 0:
        return out
    cut = np.empty(n, dtype=bool)
    cut[0] = True
    np.not_equal(msg[1:], msg[:-1], out=cut[1:])
    cut[1:] |= start_ms[1:] != start_ms[:-1]
    run0 = np.flatnonzero(cut)
    run_msg = msg[run0]
    run_start = start_ms[run0]
    run_series = msg_series[run_msg]
    order = np.lexsort((run_start, run_series))  # stable: a group's runs stay in row order
    s_series = run_series[order]
    s_start = run_start[order]
    gcut = np.empty(order.size, dtype=bool)
    gcut[0] = True
    np.not_equal(s_series[1:], s_series[:-1], out=gcut[1:])
    gcut[1:] |= s_start[1:] != s_start[:-1]
    g0 = np.flatnonzero(gcut)
    group_of_run = np.empty(order.size, dtype=np.int64)
    group_of_run[order] = np.cumsum(gcut) - 1
    runs = Runs(run0, np.diff(np.append(run0, n)), order, g0, group_of_run)
    out.series = s_series[g0].tolist()
    out.start_ms = s_start[g0].tolist()
    out.first_msg = msg_call[np.minimum.reduceat(run_msg[order], g0)].tolist()
    out.n = np.add.reduceat(runs.lengths[order], g0).tolist()
    group_of_row: IntArray | None = None
    for name, col in columns.items():
        if name in NOT_STATS:
            continue
        values = col.astype(np.float64, copy=False)
        out.stats[name] = _stats(values, runs)
        if name in SKETCHED:
            if group_of_row is None:
                group_of_row = runs.group_of_row()
            out.sketch_rows[name] = (values, group_of_row)
    if "status" in columns:
        if group_of_row is None:
            group_of_row = runs.group_of_row()
        out.counts = _router_counts(columns["status"], columns["code"], group_of_row, g0.size)
    return out


def _stats(values: FloatArray, runs: Runs) -> list[Stat | None]:
    """Stat of each group's finite values, as `accum.stat_of` (None when there are none)."""
    finite = np.isfinite(values)
    if finite.all():
        count = np.add.reduceat(runs.lengths[runs.order], runs.group_starts).tolist()
        total, low, high = values, values, values
    else:
        count = runs.reduce(np.add, finite.astype(np.int64))
        total = np.where(finite, values, 0.0)
        low = np.where(finite, values, np.inf)
        high = np.where(finite, values, -np.inf)
    with np.errstate(over="ignore"):  # a huge value's square is inf, as with np.dot
        squares = total * total
    return [
        Stat(c, s, q, lo, hi) if c else None
        for c, s, q, lo, hi in zip(
            count,
            runs.reduce(np.add, total),
            runs.reduce(np.add, squares),
            runs.reduce(np.minimum, low),
            runs.reduce(np.maximum, high),
            strict=True,
        )
    ]


def _router_counts(
    status: Column, code: Column, group: IntArray, n_groups: int
) -> tuple[list[int], list[str], list[int]]:
    """Groups, names and counts of status classes, then of H codes (`accum._router_counts`)."""
    valid = (status >= 100) & (status <= 599)
    key = group[valid] * 6 + status[valid] // 100
    per_class = np.bincount(key, minlength=n_groups * 6)
    nz = np.flatnonzero(per_class)
    groups = (nz // 6).tolist()
    names = [CLASS_NAMES[c] for c in (nz % 6).tolist()]
    counts = per_class[nz].tolist()
    has_code = code > 0
    if has_code.any():
        codes = code[has_code].astype(np.int64)
        limit = int(codes.max()) + 1
        uniq, cnt = np.unique(group[has_code] * limit + codes, return_counts=True)
        groups += (uniq // limit).tolist()
        names += [f"H{c:02d}" for c in (uniq % limit).tolist()]
        counts += cnt.tolist()
    return groups, names, counts
