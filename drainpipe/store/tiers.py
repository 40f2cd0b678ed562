"""Coarser tiers of stored summaries: a settled hour's minutes merged into 10-minute and hour rows.

A 7-day chart at a 2-hour step would otherwise merge 10,080 one-minute summaries per
series on every request. The store keeps, beside the minute rows, one row per series per
10 minutes and per hour (`TIERS`), built from the minute rows once an hour has settled.
Merging is exact (counts, sums, min/max and sketch buckets add), so a tier row is the
same summary the API would have merged from the minutes.

Which rows are current is tracked per hour: every write of minute rows marks their hours
unsettled (a version that counts writes, and the time of the last one) in the same
transaction. `settle` builds the tiers of hours that are closed and quiet, and clears an
hour's mark only if no write touched it meanwhile (its version is unchanged); otherwise
the hour stays unsettled and is built again later. Readers use tier rows only for whole
tier intervals of settled hours and read minutes for the rest (`query.plan`), so an
answer never depends on whether settling has caught up, only its cost does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from drainpipe import accum, codec
from drainpipe.codec import EncodedSummary
from drainpipe.model import MINUTE_MS, Summary

HOUR_MS: Final = 60 * MINUTE_MS
TIERS: Final = (600, 3600)  # seconds: 10 minutes, and the hour they make up
# An hour settles once the rollup can no longer change it (5 minutes of lateness, plus
# the flush and the sink) and no write has touched it for QUIET_MS, so that a backfill
# writing into an old hour is not merged again after every batch.
SETTLE_AFTER_MS: Final = 7 * MINUTE_MS
QUIET_MS: Final = MINUTE_MS

# (period_s, start, end) -> the payloads of every series' rows of that period, handed
# over in groups; every row of a series is in the same group.
Reader = Callable[[int, int, int], Iterable[Sequence[bytes]]]
Writer = Callable[[list[EncodedSummary]], None]


def hour_of(ms: int) -> int:
    return ms - ms % HOUR_MS


def hours(start_ms: int, end_ms: int) -> range:
    """The hour starts of every hour that [start_ms, end_ms) touches."""
    if end_ms <= start_ms:
        return range(0)
    return range(hour_of(start_ms), end_ms, HOUR_MS)


def due(hour_ms: int, touched_ms: int, now_ms: int, after_ms: int = SETTLE_AFTER_MS) -> bool:
    """Whether an unsettled hour should be built now."""
    return hour_ms + HOUR_MS + after_ms <= now_ms and touched_ms + QUIET_MS <= now_ms


def merge_period(summaries: Iterable[Summary], period_s: int) -> list[Summary]:
    """The summaries merged per series and period_s interval."""
    step = period_s * 1000
    groups: dict[tuple[str, str, str, int], list[Summary]] = defaultdict(list)
    for s in summaries:
        groups[s.owner, s.process_type, s.family, s.start_ms - s.start_ms % step].append(s)
    out = []
    for (_, _, _, start), parts in groups.items():
        merged = accum.merged(parts, start, period_s)
        if merged is not None:
            out.append(merged)
    return out


def _merged_reading(read: Reader, source_s: int, period_s: int, start_ms: int) -> list[bytes]:
    """Every series' source_s rows of [start_ms, start_ms + period_s) merged into one
    period_s row each, encoded. The reader hands the rows over a few series at a time,
    so what is decoded at once is one group's rows, not the interval's, and settling's
    memory does not grow with the number of apps (BENCHMARKS.md, `bench.settle`)."""
    out: list[bytes] = []
    done: set[tuple[str, str, str]] = set()
    for group in read(source_s, start_ms, start_ms + period_s * 1000):
        parts: dict[tuple[str, str, str], list[Summary]] = defaultdict(list)
        for payload in group:
            s = codec.decode_summary(payload)
            parts[s.owner, s.process_type, s.family].append(s)
        merged = []
        for key, summaries in parts.items():
            if key in done:
                # Two rows of one key would make the second overwrite the first.
                raise ValueError(f"the store's reader split the rows of series {key} over groups")
            done.add(key)
            # In time order, whatever order the store gave: float sums then come out the
            # same on every rebuild and in every store.
            summaries.sort(key=lambda s: s.start_ms)
            m = accum.merged(summaries, start_ms, period_s)
            if m is not None:
                merged.append(m)
        out += codec.encode_summaries(merged)
    return out


def build_hour(read: Reader, write: Writer, hour_ms: int) -> list[EncodedSummary]:
    """The tier rows of one hour from its minute rows, a 10-minute slice at a time: each
    slice's 10-minute rows are written as they are made (`write`), and the hour rows,
    merged from those read back, are returned for the caller to write with the clearing
    of the hour's mark. Until that clearing readers use none of them."""
    if hour_ms % HOUR_MS:
        raise ValueError(f"{hour_ms} is not the start of an hour")
    (small, large) = TIERS
    for start in range(hour_ms, hour_ms + HOUR_MS, small * 1000):
        rows = _merged_reading(read, 60, small, start)
        if rows:
            write([codec.decode_head(p) for p in rows])
    return [codec.decode_head(p) for p in _merged_reading(read, small, large, hour_ms)]
