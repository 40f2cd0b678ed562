"""Accumulators: build summaries from measurement columns and merge them exactly.

An accumulator follows `initial / add / merge / result`: `new_summary` is the initial
value, `add_columns` adds a slice of a raw batch, `merge_into` merges two summaries,
and the API's `downsample` module turns merged summaries into results. count, sum,
sum of squares, min, max and counts merge exactly; sketches merge by adding buckets.
The rollup adds a whole poll at once with `rollup.columns`, which is tested against
`add_columns`: that function is the definition, the vectorized pass an optimization.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from drainpipe import sketch
from drainpipe.model import CUSTOM_KINDS, Column, Stat, Summary

# Columns that keep a quantile sketch besides their Stat.
SKETCHED = frozenset({"service_ms", "connect_ms", "measure"})


def custom_columns(columns: Mapping[str, Column]) -> dict[str, Column]:
    """A custom-metrics batch as one column per kind (NaN where a row is another kind).

    Every kind then accumulates like any measurement column: a Stat each (count# reads
    its `sum`), and a sketch for measure#.
    """
    kind = columns["kind"]
    value = columns["value"].astype(np.float64, copy=False)
    out: dict[str, Column] = {"ts_ms": columns["ts_ms"]}
    for name, code in CUSTOM_KINDS.items():
        out[name] = np.where(kind == code, value, np.nan)
    return out


# Router lines whose `service` is how long a connection stayed open, not a response time:
# a websocket upgrade (101) lasts as long as the socket, and H15 closes an idle connection.
LONG_LIVED_STATUS = 101
LONG_LIVED_CODE = 15  # H15


def router_columns(columns: Mapping[str, Column]) -> dict[str, Column]:
    """A router batch with no response time for long-lived connections (NaN `service_ms`
    where status is 101 or the code is H15): they count in throughput and errors, and stay
    out of the response-time distribution, as Heroku's own autoscaling leaves websockets out.
    """
    long_lived = (columns["status"] == LONG_LIVED_STATUS) | (columns["code"] == LONG_LIVED_CODE)
    out = dict(columns)
    if long_lived.any():
        out["service_ms"] = np.where(long_lived, np.nan, columns["service_ms"])
    return out


def stat_of(values: npt.NDArray[np.float64]) -> Stat | None:
    """Stat of the finite values of a column; None when there are none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    return Stat(
        count=int(finite.size),
        sum=float(finite.sum()),
        sumsq=float(np.dot(finite, finite)),
        min=float(finite.min()),
        max=float(finite.max()),
    )


def merge_stat(a: Stat, b: Stat) -> Stat:
    # Positional, and min()/max() spelled out exactly (b only if strictly better): the
    # rollup runs this once per window, column and poll, so its cost shows.
    return Stat(
        a.count + b.count,
        a.sum + b.sum,
        a.sumsq + b.sumsq,
        b.min if b.min < a.min else a.min,
        b.max if b.max > a.max else a.max,
    )


def new_summary(
    owner: str, process_type: str, family: str, period_s: int, start_ms: int
) -> Summary:
    return Summary(owner, process_type, family, period_s, start_ms)


def _router_counts(status: npt.NDArray[np.int16], code: npt.NDArray[np.int16]) -> dict[str, int]:
    counts: dict[str, int] = {}
    classes = status[(status >= 100) & (status <= 599)] // 100
    if classes.size:
        for cls, n in zip(*np.unique(classes, return_counts=True), strict=True):
            counts[f"{int(cls)}xx"] = int(n)
    codes = code[code > 0]
    if codes.size:
        for c, n in zip(*np.unique(codes, return_counts=True), strict=True):
            counts[f"H{int(c):02d}"] = int(n)
    return counts


def add_columns(dst: Summary, columns: Mapping[str, Column]) -> None:
    """Add one slice of a raw batch (all rows in dst's window) to dst."""
    part = Summary(dst.owner, dst.process_type, dst.family, dst.period_s, dst.start_ms)
    part.n = len(columns["ts_ms"])
    for name, col in columns.items():
        if name in ("ts_ms", "status", "code"):
            continue
        values = col.astype(np.float64, copy=False)
        st = stat_of(values)
        if st is not None:
            part.stats[name] = st
            if name in SKETCHED:
                part.sketches[name] = sketch.from_values(values)
    if "status" in columns:
        part.counts = _router_counts(columns["status"], columns["code"])  # type: ignore[arg-type]
    merge_into(dst, part)


def merge_into(dst: Summary, src: Summary) -> None:
    """dst += src; both describe the same series (periods may differ when downsampling)."""
    dst.n += src.n
    for name, st in src.stats.items():
        have = dst.stats.get(name)
        dst.stats[name] = st if have is None else merge_stat(have, st)
    for name, sk in src.sketches.items():
        have_sk = dst.sketches.get(name)
        dst.sketches[name] = sk if have_sk is None else sketch.merge((have_sk, sk))
    for name, n in src.counts.items():
        dst.counts[name] = dst.counts.get(name, 0) + n


def merged(parts: Iterable[Summary], start_ms: int, period_s: int) -> Summary | None:
    """One summary covering all parts; sketches are merged in one vectorized pass."""
    items = list(parts)
    if not items:
        return None
    first = items[0]
    out = Summary(first.owner, first.process_type, first.family, period_s, start_ms)
    sketches: dict[str, list[sketch.Sketch]] = {}
    for s in items:
        out.n += s.n
        for name, st in s.stats.items():
            have = out.stats.get(name)
            out.stats[name] = st if have is None else merge_stat(have, st)
        for name, sk in s.sketches.items():
            sketches.setdefault(name, []).append(sk)
        for name, n in s.counts.items():
            out.counts[name] = out.counts.get(name, 0) + n
    out.sketches = {name: sketch.merge(sks) for name, sks in sketches.items()}
    return out


def mean(st: Stat) -> float | None:
    return st.sum / st.count if st.count else None


def stddev(st: Stat) -> float | None:
    if st.count == 0:
        return None
    m = st.sum / st.count
    return math.sqrt(max(st.sumsq / st.count - m * m, 0.0))
