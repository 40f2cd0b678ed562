"""The store interface: summaries and events in, time ranges of them out.

Implementations: `sqlite.SqliteStore` (embedded) and `postgres.PostgresStore` (shards).
Writes are idempotent: a summary replaces the stored version of its key only when it has
merged more measurements (`n`), so replays and duplicates never count twice and never
roll a window back; events are keyed by their content.
Both partition by UTC day and enforce retention by dropping whole days, and both keep
10-minute and hour rows beside the minute ones for long charts (`tiers`).

A read over several shards while one is down answers from the others when its caller
collects what is missing (`collecting_missing`): a partial outage hides only the series
on the shard that is away. A read that needs only that shard raises `ShardUnavailable`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from drainpipe.codec import EncodedSummary
from drainpipe.model import EventRecord, Summary

DAY_MS = 86_400_000
_MISSING: ContextVar[set[int] | None] = ContextVar("drainpipe_missing_shards", default=None)


class ShardUnavailable(Exception):
    """A read needs a shard that does not answer."""

    def __init__(self, shard: int, message: str) -> None:
        super().__init__(message)
        self.shard = shard


@contextmanager
def collecting_missing() -> Iterator[set[int]]:
    """While open, multi-shard reads (in this context and the threads it starts work
    in) skip a shard that does not answer and add its index to the set yielded."""
    found: set[int] = set()
    token = _MISSING.set(found)
    try:
        yield found
    finally:
        _MISSING.reset(token)


def went_without(shard: int) -> bool:
    """Note that a read skipped `shard`; False when nobody collects (then it must raise)."""
    found = _MISSING.get()
    if found is None:
        return False
    found.add(shard)
    return True


@dataclass(frozen=True, slots=True)
class StoredEvent:
    owner: str
    event: EventRecord


class SeriesSpan(NamedTuple):
    """One stored series of an app: its minute rows run from `first_ms` to `last_ms`."""

    process_type: str
    family: str
    first_ms: int
    last_ms: int


class Store(Protocol):
    def write_summaries(self, summaries: Sequence[EncodedSummary]) -> None:
        """Store encoded summaries as they are (`codec.encoded` makes one of a Summary)."""

    def write_events(self, events: Sequence[StoredEvent]) -> None: ...

    def read_summaries(
        self,
        owner: str,
        family: str,
        start_ms: int,
        end_ms: int,
        process_type: str | None = None,
        period_s: int = 60,
    ) -> list[Summary]: ...

    def read_events(self, owner: str, start_ms: int, end_ms: int) -> list[EventRecord]: ...

    def series(self, owner: str) -> list[SeriesSpan]:
        """Every series of one app that has minute rows, with its first and last minute."""

    def unsettled_hours(
        self, start_ms: int, end_ms: int, series: tuple[str, str] | None = None
    ) -> set[int]:
        """Hours touching [start_ms, end_ms) whose tier rows may lag their minutes
        (`tiers`); of the shard of one (owner, process type) `series` where given."""

    def settle(self, now_ms: int, after_ms: int = ...) -> int:
        """Build the tier rows of the hours due by now_ms; returns how many hours."""

    def drop_before(self, cutoff_ms: int) -> list[str]: ...

    def delete_owner(self, owner: str) -> int:
        """Delete every summary and event of one app (a deleted one); returns the rows."""

    def close(self) -> None: ...


def day_of(ms: int) -> int:
    """The UTC day number (days since the epoch) of an epoch-ms time."""
    return ms // DAY_MS


def day_name(day: int) -> str:
    import datetime as dt

    d = dt.date(1970, 1, 1) + dt.timedelta(days=day)
    # Not strftime("%Y"): glibc writes year 1 as "1", and names must sort as days do.
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"
