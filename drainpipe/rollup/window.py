"""Pure rollup core: per-minute windows, per-partition watermarks, flush and commit points.

Rules (they make crash recovery exact, see `positions`):
- A partition's watermark is the newest event time seen on it. A row counts if its
  minute is no more than `lateness_ms` behind the watermark's minute, the watermark
  including the row itself; rows are judged in log order, exactly as if one at a time.
  Later rows are dropped and counted in `dropped_late`.
- `flush` returns every window that changed since the last flush, then forgets windows
  that can no longer change (older than the watermark's minute minus the lateness).
- `positions` gives, per partition, the raw offset to resume from: the first offset of
  its oldest open window (or the next offset when none is open), with the watermark as
  metadata. Call it only after the summaries of the preceding `flush` are durable.

Why a restart rebuilds exactly: every window open at commit time received all its rows
at or after its first offset, so replay from the committed offset sees them all. With
the watermark restored, every window closed at commit time (already flushed in final
form) stays closed and its rows are dropped again; without it, replay would re-emit a
partial version of such a window, and a compacted summary topic keeps the last version
of a key, so every store fed from that topic would regress.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from drainpipe import accum
from drainpipe.accum import Column
from drainpipe.bus import Position, TopicPartition
from drainpipe.model import MINUTE_MS, Summary

WindowKey = tuple[str, str, str, int]  # owner, process type, family, start_ms


@dataclass(slots=True)
class Window:
    summary: Summary
    first_offset: int
    dirty: bool = True


@dataclass(slots=True)
class PartitionState:
    next_offset: int = 0
    watermark_ms: int | None = None
    windows: dict[WindowKey, Window] = field(default_factory=dict)


def encode_watermark(watermark_ms: int | None) -> str:
    return "" if watermark_ms is None else f"wm={watermark_ms}"


def decode_watermark(metadata: str) -> int | None:
    if not metadata:
        return None
    if not metadata.startswith("wm="):
        raise ValueError(f"commit metadata {metadata!r} is not a rollup watermark ('wm=<ms>')")
    return int(metadata[3:])


class RollupCore:
    def __init__(self, period_ms: int = MINUTE_MS, lateness_ms: int = 5 * MINUTE_MS) -> None:
        if period_ms <= 0 or lateness_ms < 0:
            raise ValueError(f"period {period_ms} ms must be > 0 and lateness {lateness_ms} >= 0")
        self.period_ms = period_ms
        self.lateness_ms = lateness_ms
        self.parts: dict[TopicPartition, PartitionState] = {}
        self.dropped_late: dict[str, int] = {}

    def restore(self, tp: TopicPartition, position: Position) -> None:
        """Start tp afresh at a committed position (after start-up or a rebalance)."""
        self.parts[tp] = PartitionState(
            next_offset=position.offset, watermark_ms=decode_watermark(position.metadata)
        )

    def revoke(self, tp: TopicPartition) -> None:
        self.parts.pop(tp, None)

    def open_windows(self) -> int:
        return sum(len(p.windows) for p in self.parts.values())

    def add(
        self,
        tp: TopicPartition,
        offset: int,
        family: str,
        owner: str,
        process_type: str,
        columns: Mapping[str, Column],
    ) -> None:
        """Add one raw batch read at (tp, offset)."""
        st = self.parts.get(tp)
        if st is None:
            st = self.parts[tp] = PartitionState(next_offset=offset)
        st.next_offset = offset + 1
        ts = columns["ts_ms"]
        if ts.size == 0:
            return
        p = self.period_ms
        running = np.maximum.accumulate(ts)
        if st.watermark_ms is not None:
            running = np.maximum(running, st.watermark_ms)
        starts = ts - ts % p
        keep = starts >= running - running % p - self.lateness_ms
        st.watermark_ms = int(running[-1])
        if not keep.all():
            dropped = int(keep.size - np.count_nonzero(keep))
            self.dropped_late[family] = self.dropped_late.get(family, 0) + dropped
            columns = {k: v[keep] for k, v in columns.items()}
            starts = starts[keep]
            if starts.size == 0:
                return
        first = int(starts[0])
        if starts.size == 1 or (starts == first).all():
            groups: list[tuple[int, Mapping[str, Column]]] = [(first, columns)]
        else:
            groups = [
                (int(s), {k: v[starts == s] for k, v in columns.items()}) for s in np.unique(starts)
            ]
        period_s = p // 1000
        for start, cols in groups:
            key = (owner, process_type, family, start)
            w = st.windows.get(key)
            if w is None:
                summary = accum.new_summary(owner, process_type, family, period_s, start)
                w = st.windows[key] = Window(summary, first_offset=offset)
            accum.add_columns(w.summary, cols)
            w.dirty = True

    def flush(self) -> list[Summary]:
        """Changed windows since the last flush (copies); closed windows are forgotten."""
        out: list[Summary] = []
        for st in self.parts.values():
            horizon = None
            if st.watermark_ms is not None:
                horizon = st.watermark_ms - st.watermark_ms % self.period_ms - self.lateness_ms
            for key, w in list(st.windows.items()):
                if w.dirty:
                    s = w.summary
                    out.append(
                        Summary(
                            s.owner,
                            s.process_type,
                            s.family,
                            s.period_s,
                            s.start_ms,
                            s.n,
                            dict(s.stats),
                            dict(s.sketches),
                            dict(s.counts),
                        )
                    )
                    w.dirty = False
                if horizon is not None and key[3] < horizon:
                    del st.windows[key]
        return out

    def positions(self) -> dict[TopicPartition, Position]:
        out = {}
        for tp, st in self.parts.items():
            offset = min((w.first_offset for w in st.windows.values()), default=st.next_offset)
            out[tp] = Position(offset, encode_watermark(st.watermark_ms))
        return out
