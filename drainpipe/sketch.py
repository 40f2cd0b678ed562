"""Mergeable quantile sketch with 0.5 % relative error, built and merged with numpy.

The algorithm is DDSketch's (Masson, Rim, Lee, VLDB 2019): a positive value v falls in
bucket k = ceil(log_gamma(v)) with gamma = (1 + a) / (1 - a); every value in bucket k
lies in (gamma^(k-1), gamma^k], and answering with 2 gamma^k / (gamma + 1) is within
relative error a of it. Buckets are integer counts, so merging is exact addition:
associative, commutative, and independent of how the data was split across dynos or
minutes. Unlike the `ddsketch` package, whose `add` is one Python call per value,
buckets here are computed for a whole column at once, which the rollup's throughput
target needs. Values at or below MIN_VALUE (zero and negatives) share one bucket and
are answered as 0: drainpipe sketches only durations, which are never negative.

The q-quantile is the nearest-rank value, the ceil(q * n)-th smallest (numpy's
`method="inverted_cdf"`; InfluxDB's and l2met's percentiles), answered within
RELATIVE_ACCURACY of it. A lower rank would hide the tail of a small minute: of ten
requests, one slow one is the p95 and the p99, as an alert on p95 needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

RELATIVE_ACCURACY: Final = 0.005
GAMMA: Final = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LN_GAMMA: Final = math.log(GAMMA)
MIN_VALUE: Final = 1e-9
KEY_DTYPE: Final = np.dtype("<i4")
COUNT_DTYPE: Final = np.dtype("<i8")
PACK_GROUP_BUCKETS: Final = 1 << 15

_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]


class Sketch(msgspec.Struct, array_like=True, frozen=True):
    """Bucket counts in one of two layouts; `arrays()` reads either.

    Wide (kw = cw = 0), what the rollup merges into: `keys` int32 LE, sorted and unique,
    and `counts` int64 LE, so a merge is a `frombuffer` and no conversion. Packed, what
    goes on the bus and into the store (`pack`): the first key is `base`, `keys` holds
    the gaps to each following key as unsigned kw-byte integers and `counts` the counts
    as unsigned cw-byte ones. Buckets of one window sit close together and most counts
    are small, so a packed sketch is usually one byte per key and per count instead of
    twelve. Sketches stored as [zeros, keys, counts], before packing existed, read as wide.
    """

    zeros: int = 0
    keys: bytes = b""
    counts: bytes = b""
    base: int = 0
    kw: int = 0
    cw: int = 0

    @property
    def buckets(self) -> int:
        return len(self.counts) // (self.cw or COUNT_DTYPE.itemsize)

    @property
    def count(self) -> int:
        return self.zeros + int(self._counts().sum())

    def _counts(self) -> npt.NDArray[np.integer]:
        return np.frombuffer(self.counts, _UNSIGNED[self.cw] if self.cw else COUNT_DTYPE)

    def arrays(self) -> tuple[_Ints, _Ints]:
        """(keys, counts), both int64, keys ascending."""
        counts = self._counts().astype(np.int64)
        if not self.kw:
            return np.frombuffer(self.keys, KEY_DTYPE).astype(np.int64), counts
        keys = np.empty(counts.size, np.int64)
        if counts.size:
            keys[0] = 0
            np.cumsum(np.frombuffer(self.keys, _UNSIGNED[self.kw]), out=keys[1:])
            keys += self.base
        return keys, counts

    def wide(self) -> Sketch:
        """The same sketch in the wide layout."""
        if not self.kw and not self.cw:
            return self
        keys, counts = self.arrays()
        return Sketch(self.zeros, keys.astype(KEY_DTYPE).tobytes(), counts.tobytes())


_UNSIGNED: Final[dict[int, np.dtype[Any]]] = {
    1: np.dtype("<u1"),
    2: np.dtype("<u2"),
    4: np.dtype("<u4"),
    8: np.dtype("<u8"),
}


EMPTY: Final = Sketch()


def bucket_keys(values: _Floats) -> _Ints:
    """Bucket index of each positive value (callers filter values <= MIN_VALUE out)."""
    logs = np.log(values)
    logs /= LN_GAMMA
    return np.ceil(logs, out=logs).astype(np.int64)


def _from_keys(zeros: int, keys: _Ints, counts: _Ints | None = None) -> Sketch:
    if keys.size == 0:
        return Sketch(zeros=zeros)
    if counts is None:
        uniq, cnt = np.unique(keys, return_counts=True)
    else:
        lo = int(keys.min())
        dense = np.bincount(keys - lo, weights=counts).astype(np.int64)
        nz = np.flatnonzero(dense)
        uniq, cnt = nz + lo, dense[nz]
    return Sketch(
        zeros=zeros,
        keys=uniq.astype(KEY_DTYPE).tobytes(),
        counts=cnt.astype(COUNT_DTYPE).tobytes(),
    )


def from_values(values: _Floats) -> Sketch:
    """Sketch of the finite values of an array (NaN is ignored)."""
    values = values[np.isfinite(values)]
    positive = values[values > MIN_VALUE]
    zeros = int(values.size - positive.size)
    return _from_keys(zeros, bucket_keys(positive))


def from_groups(
    values: _Floats, groups: _Ints, n_groups: int, prior: Sequence[Sketch | None] = ()
) -> list[Sketch]:
    """One sketch per group, in one pass: item g equals
    `merge([prior[g], from_values(values[groups == g])])` (no prior: an empty one).

    Every (group, bucket) pair, of the values and of the prior sketches alike, is counted
    under one combined integer key, so the cost is a few array passes over everything,
    not a few numpy calls per group.
    """
    finite = np.isfinite(values)
    if not finite.all():
        values, groups = values[finite], groups[finite]
    positive = values > MIN_VALUE
    if positive.all():
        zeros = [0] * n_groups
    else:
        zeros = np.bincount(groups[~positive], minlength=n_groups).tolist()
        values, groups = values[positive], groups[positive]
    keys = bucket_keys(values)
    prior_keys, prior_counts, prior_groups, prior_sizes = [], [], [], []
    for g, p in enumerate(prior):
        if p is not None:
            zeros[g] += p.zeros
            if p.counts:
                if p.kw or p.cw:
                    pk, pc = p.arrays()
                else:
                    pk, pc = np.frombuffer(p.keys, KEY_DTYPE), np.frombuffer(p.counts, COUNT_DTYPE)
                prior_keys.append(pk)
                prior_counts.append(pc)
                prior_groups.append(g)
                prior_sizes.append(pk.size)
    if keys.size == 0 and not prior_keys:
        return [Sketch(zeros=z) if z else EMPTY for z in zeros]
    lo, hi = (int(keys.min()), int(keys.max())) if keys.size else (0, 0)
    if prior_keys:
        p_keys = np.concatenate(prior_keys, dtype=np.int64)
        lo, hi = min(lo, int(p_keys.min())), max(hi, int(p_keys.max()))
    width = hi - lo + 1
    combined = groups * width
    combined += keys
    combined -= lo
    uniq, cnt = _count(combined, n_groups * width)
    if prior_keys:  # both sorted and unique: a stable sort of the two merges them in O(n)
        p_groups = np.repeat(np.array(prior_groups, dtype=np.int64), prior_sizes)
        uniq = np.concatenate([uniq, p_groups * width + (p_keys - lo)])
        cnt = np.concatenate([cnt, *prior_counts])
        order = np.argsort(uniq, kind="stable")
        uniq, cnt = uniq[order], cnt[order]
        first = np.flatnonzero(np.append(True, uniq[1:] != uniq[:-1]))
        uniq, cnt = uniq[first], np.add.reduceat(cnt, first)
    group = uniq // width
    key_bytes = (uniq - group * width + lo).astype(KEY_DTYPE).tobytes()
    count_bytes = cnt.astype(COUNT_DTYPE).tobytes()
    bounds = np.searchsorted(group, np.arange(n_groups + 1)).tolist()
    out = []
    for g, z in enumerate(zeros):
        a, b = bounds[g], bounds[g + 1]
        if a == b:
            out.append(Sketch(zeros=z) if z else EMPTY)
        else:
            out.append(Sketch(z, key_bytes[4 * a : 4 * b], count_bytes[8 * a : 8 * b]))
    return out


def _count(combined: _Ints, size: int) -> tuple[_Ints, _Ints]:
    """The distinct values of `combined` (all in [0, size)), ascending, and their counts."""
    if combined.size == 0:
        return combined, combined
    if size <= combined.size:  # dense counting beats sorting
        dense = np.bincount(combined, minlength=size)
        uniq = np.flatnonzero(dense)
        return uniq, dense[uniq]
    if size < 1 << 31:  # int32 sorts about twice as fast
        combined = combined.astype(np.int32)
    combined = np.sort(combined)
    first = np.flatnonzero(np.append(True, combined[1:] != combined[:-1]))
    return combined[first].astype(np.int64), np.diff(np.append(first, combined.size))


def merge(sketches: Iterable[Sketch]) -> Sketch:
    """Exact merge: bucket counts add."""
    parts = [s for s in sketches if s.counts or s.zeros]
    if not parts:
        return EMPTY
    if len(parts) == 1:
        return parts[0]
    zeros = sum(s.zeros for s in parts)
    arrays = [s.arrays() for s in parts if s.counts]
    if not arrays:
        return Sketch(zeros=zeros)
    keys = np.concatenate([k for k, _ in arrays])
    counts = np.concatenate([c for _, c in arrays])
    return _from_keys(zeros, keys, counts)


def pack(sketches: Sequence[Sketch]) -> list[Sketch]:
    """The sketches in the packed layout (see `Sketch`), vectorized over groups of them.

    Each key gap and count gets the narrowest unsigned width its sketch's largest one
    fits in, so the cost is a few array passes over all buckets plus one slice per sketch.
    A group holds up to PACK_GROUP_BUCKETS buckets, since the passes need temporaries
    per bucket: packing a settled hour's sketches at once would take memory in
    proportion to all of them.
    """
    out = list(sketches)
    group: list[int] = []
    buckets = 0
    for i, s in enumerate(sketches):
        if s.counts and not s.kw:
            group.append(i)
            buckets += s.buckets
            if buckets >= PACK_GROUP_BUCKETS:
                _pack_group(sketches, group, out)
                group, buckets = [], 0
    if group:
        _pack_group(sketches, group, out)
    return out


def _pack_group(sketches: Sequence[Sketch], todo: list[int], out: list[Sketch]) -> None:
    parts = [sketches[i].arrays() for i in todo]
    sizes = np.array([k.size for k, _ in parts], dtype=np.int64)
    starts = np.zeros(sizes.size, dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    keys = np.concatenate([k for k, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    del parts
    gaps = np.empty_like(keys)
    gaps[0] = 0
    np.subtract(keys[1:], keys[:-1], out=gaps[1:])
    gaps[starts] = 0  # a sketch's first key is its base, not a gap
    key_width = _widths(np.maximum.reduceat(gaps, starts), (1, 2, 4))
    count_width = _widths(np.maximum.reduceat(counts, starts), (1, 2, 4, 8))
    gap_bytes = {w: gaps.astype(_UNSIGNED[w]).tobytes() for w in set(key_width)}
    count_bytes = {w: counts.astype(_UNSIGNED[w]).tobytes() for w in set(count_width)}
    bases = keys[starts].tolist()
    for j, (i, a, n) in enumerate(zip(todo, starts.tolist(), sizes.tolist(), strict=True)):
        kw, cw = key_width[j], count_width[j]
        out[i] = Sketch(
            sketches[i].zeros,
            gap_bytes[kw][(a + 1) * kw : (a + n) * kw],
            count_bytes[cw][a * cw : (a + n) * cw],
            bases[j],
            kw,
            cw,
        )


def _widths(largest: _Ints, choices: tuple[int, ...]) -> list[int]:
    """The narrowest of `choices` (bytes) an unsigned integer up to each `largest` fits."""
    width = np.full(largest.size, choices[-1], dtype=np.int64)
    for w in reversed(choices[:-1]):
        width[largest < (1 << (8 * w))] = w
    return width.tolist()


def quantiles(
    sketch: Sketch, qs: Sequence[float], lo: float | None = None, hi: float | None = None
) -> list[float | None]:
    """The qs-quantiles, clamped to the exact [lo, hi] when the caller knows them."""
    keys, counts = sketch.arrays()
    n = sketch.zeros + int(counts.sum())
    if n == 0:
        return [None for _ in qs]
    cum = np.cumsum(counts) + sketch.zeros
    out: list[float | None] = []
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q!r} is outside [0, 1]")
        # 0-based; the epsilon keeps q * n that is whole but for float error (0.95 * 20) whole.
        rank = max(0, math.ceil(q * n - 1e-9) - 1)
        if rank < sketch.zeros:
            value = 0.0
        else:
            i = int(np.searchsorted(cum, rank, side="right"))
            value = 2.0 * GAMMA ** float(keys[i]) / (GAMMA + 1.0)
        if lo is not None:
            value = max(value, lo)
        if hi is not None:
            value = min(value, hi)
        out.append(value)
    return out
