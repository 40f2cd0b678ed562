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

The q-quantile is the value of rank floor(q * (n - 1)) in the sorted data (numpy's
`method="lower"`), answered within RELATIVE_ACCURACY of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

RELATIVE_ACCURACY: Final = 0.005
GAMMA: Final = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LN_GAMMA: Final = math.log(GAMMA)
MIN_VALUE: Final = 1e-9
KEY_DTYPE: Final = np.dtype("<i4")
COUNT_DTYPE: Final = np.dtype("<i8")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Sketch(msgspec.Struct, array_like=True, frozen=True):
    """Bucket counts: `keys` (sorted, unique, int32 LE) and `counts` (int64 LE)."""

    zeros: int = 0
    keys: bytes = b""
    counts: bytes = b""

    @property
    def count(self) -> int:
        return self.zeros + int(np.frombuffer(self.counts, COUNT_DTYPE).sum())

    def arrays(self) -> tuple[IntArray, IntArray]:
        keys = np.frombuffer(self.keys, KEY_DTYPE).astype(np.int64)
        return keys, np.frombuffer(self.counts, COUNT_DTYPE).astype(np.int64)


EMPTY: Final = Sketch()


def bucket_keys(values: FloatArray) -> IntArray:
    """Bucket index of each positive value (callers filter values <= MIN_VALUE out)."""
    return np.ceil(np.log(values) / LN_GAMMA).astype(np.int64)


def _from_keys(zeros: int, keys: IntArray, counts: IntArray | None = None) -> Sketch:
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


def from_values(values: FloatArray) -> Sketch:
    """Sketch of the finite values of an array (NaN is ignored)."""
    values = values[np.isfinite(values)]
    positive = values[values > MIN_VALUE]
    zeros = int(values.size - positive.size)
    return _from_keys(zeros, bucket_keys(positive))


def merge(sketches: Iterable[Sketch]) -> Sketch:
    """Exact merge: bucket counts add."""
    parts = [s for s in sketches if s.keys or s.zeros]
    if not parts:
        return EMPTY
    if len(parts) == 1:
        return parts[0]
    zeros = sum(s.zeros for s in parts)
    keys = np.concatenate([np.frombuffer(s.keys, KEY_DTYPE) for s in parts]).astype(np.int64)
    counts = np.concatenate([np.frombuffer(s.counts, COUNT_DTYPE) for s in parts])
    return _from_keys(zeros, keys, counts.astype(np.int64))


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
        rank = math.floor(q * (n - 1))
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
