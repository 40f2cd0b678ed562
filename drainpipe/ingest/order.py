"""Cutting a request's batches where its lines move a watermark into a later minute.

Grouping must not change what counts as late. The rollup judges each row against the
newest event time before it on its partition, message after message, and only the
minute of that watermark decides. A request whose lines may raise a partition's
watermark into a later minute is therefore cut there (`in_log_order`): each topic's
batches are split at every such line, and the pieces go out in the order of their first
lines, so every row meets the watermark minute it would have met had the lines come one
at a time. A request whose minutes span no more than the lateness, the usual case, stays
one batch per key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from drainpipe.model import MINUTE_MS, Column, Schema

SeriesKey = tuple[Schema, str, str]  # (measurement type, process type, series)
# The frame index of each row (in frame order), its key, and its columns.
Piece = tuple[npt.NDArray[np.int64], SeriesKey, Mapping[str, Column]]
_NO_CUTS: Final = np.empty(0, np.int64)


def _rises(parts: list[Piece]) -> npt.NDArray[np.int64]:
    """The frame indices of these batches' first line and of every line that raises their
    newest event time into a later minute, taken in frame order."""
    if len(parts) == 1:
        index, ts = parts[0][0], parts[0][2]["ts_ms"]
    else:
        index = np.concatenate([p[0] for p in parts])
        ts = np.concatenate([p[2]["ts_ms"] for p in parts])
        order = np.argsort(index, kind="stable")
        index, ts = index[order], ts[order]
    minute = np.maximum.accumulate(ts.astype(np.int64, copy=False)) // MINUTE_MS
    return index[np.flatnonzero(np.append(True, minute[1:] > minute[:-1]))]


def _chunk_starts(parts: list[Piece], lateness_ms: int) -> npt.NDArray[np.int64]:
    """Where to cut one topic's batches: every line that may raise the watermark minute of
    the partition it goes to.

    Which process types share a partition is the bus's business, so the cuts are those of
    every process type on its own (its first line and its rises): a rise of a partition's
    watermark is a rise, or the first line, of the process type that causes it. When the
    request's minutes span no more than the lateness, no order of its rows changes a
    verdict (none is late against another; only the watermark before the request can
    drop them), so nothing is cut: nearly every live request.
    """
    lo = min(int(p[2]["ts_ms"].min()) for p in parts)
    hi = max(int(p[2]["ts_ms"].max()) for p in parts)
    if (hi - hi % MINUTE_MS) - (lo - lo % MINUTE_MS) <= lateness_ms:
        return _NO_CUTS
    by_pt: dict[str, list[Piece]] = {}
    for p in parts:
        by_pt.setdefault(p[1][1], []).append(p)
    return np.unique(np.concatenate([_rises(mine) for mine in by_pt.values()]))


def in_log_order(
    batches: list[Piece], lateness_ms: int
) -> list[tuple[SeriesKey, Mapping[str, Column]]]:
    """The batches (in the order of their first lines) cut where their lines may raise a
    partition's watermark minute, each topic on its own; the pieces in the order of their
    first lines (see the module's docstring)."""
    by_topic: dict[str, list[Piece]] = {}
    for b in batches:
        by_topic.setdefault(b[1][0].topic, []).append(b)
    cuts = {topic: _chunk_starts(parts, lateness_ms) for topic, parts in by_topic.items()}
    if not any(c.size for c in cuts.values()):
        return [(key, columns) for _, key, columns in batches]
    pieces: list[tuple[int, SeriesKey, Mapping[str, Column]]] = []
    for index, key, columns in batches:
        chunk = np.searchsorted(cuts[key[0].topic], index, side="right")
        starts = [0, *(np.flatnonzero(chunk[1:] != chunk[:-1]) + 1).tolist()]
        if len(starts) == 1:
            pieces.append((int(index[0]), key, columns))
            continue
        for a, end in zip(starts, [*starts[1:], len(index)], strict=True):
            pieces.append((int(index[a]), key, {name: c[a:end] for name, c in columns.items()}))
    pieces.sort(key=lambda piece: piece[0])  # stable: one line's series keep their order
    return [(key, columns) for _, key, columns in pieces]
