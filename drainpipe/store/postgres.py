"""The sharded PostgreSQL store: summaries and events on N shards, partitioned by UTC day.

Sharding. A `ShardRing` maps owner + process type to a shard (the same key the bus
partitions by). A write touches one shard per series; a read of one process type asks one
shard; a read of a whole app (process_type=None), and every event read, asks all shards
and merges.

Time partitioning. The original created a schema per day with fresh tables, so that
retention was a DROP SCHEMA instead of a DELETE. Native declarative partitioning
(`PARTITION BY RANGE (start_ms)`, one partition per UTC day, `summaries_YYYYMMDD`) keeps
that: retention DETACHes (CONCURRENTLY, so readers are not blocked) and DROPs whole days,
no DELETE, no dead tuples, no vacuum debt. It also gives what schema-per-day made callers
do by hand: one table name for every query, the planner prunes to the days a time window
touches, one INSERT ... ON CONFLICT for a batch that spans midnight, bounds that keep each
row in its day, and no per-day DDL in the read path. Its costs: partitions must exist
before rows arrive, so writers create missing days first, in their own short transaction
serialized by an advisory lock; and a partition's primary key must include the partition
column, which both keys do anyway.

Writes. Grouped by shard, then per shard in one transaction: binary COPY of at most
`copy_rows` (1,024) rows at a time into a session-private staging table, then one
`INSERT ... SELECT ... ON CONFLICT`. A summary replaces the stored version of its key only
if it merged more measurements (`excluded.n > n`), the SqliteStore rule; events are
inserted once, keyed by (owner, ts_ms, source, kind, md5 of text): a digest because a
btree entry is limited to ~2.7 kB and one long log line must not wedge the sink.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import psycopg
from psycopg import sql

from drainpipe import codec
from drainpipe.clock import SYSTEM, Clock
from drainpipe.codec import EncodedSummary
from drainpipe.model import EventRecord, Summary
from drainpipe.store import SeriesSpan, StoredEvent, day_name, day_of, tiers
from drainpipe.store.pg_shard import (
    CLEAR_SETTLED,
    COPY,
    DAY_TABLE,
    DAY_TABLES,
    DETACH,
    MARK_UNSETTLED,
    MERGE,
    TYPES,
    Kind,
    Shard,
    WriteStats,
    clean,
    read_each,
)
from drainpipe.store.shards import ShardRing

log = logging.getLogger(__name__)

COPY_ROWS: Final = 1024
SETTLE_ROWS: Final = 2048  # rows decoded at a time when settling (whole owners)
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresStore:
    """The `Store` on PostgreSQL shards; shard i is dsns[i] (append shards, never reorder)."""

    def __init__(
        self,
        dsns: Sequence[str],
        schema: str = "drainpipe",
        copy_rows: int = COPY_ROWS,
        max_connections: int = 8,
        clock: Clock = SYSTEM,
    ) -> None:
        self.clock = clock  # stamps writes; `settle`'s now_ms must come from it too
        if not dsns:
            raise ValueError("PostgresStore needs at least one shard DSN")
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(
                f"schema {schema!r} must be a lower-case SQL name (letters, digits, _; <= 63)"
            )
        if not 1 <= copy_rows <= 100_000:
            raise ValueError(f"copy_rows must be between 1 and 100000, not {copy_rows}")
        self.schema = schema
        self.copy_rows = copy_rows
        self.ring = ShardRing(len(dsns))
        self.shards = [Shard(i, dsn, schema, max_connections) for i, dsn in enumerate(dsns)]
        self.stats = WriteStats()
        self._stats_lock = threading.Lock()

    # -- writing ----------------------------------------------------------------------
    def write_summaries(self, summaries: Sequence[EncodedSummary]) -> None:
        self._write_summaries(summaries)

    def _write_summaries(
        self,
        summaries: Sequence[EncodedSummary],
        settled: tuple[Shard, int, int] | None = None,
    ) -> None:
        """Upsert summaries, one transaction per shard; `settled` = (shard, hour, version)
        clears that hour's unsettled mark in the shard's transaction if unchanged."""
        latest: dict[int, dict[tuple[str, str, int, int, str], EncodedSummary]] = defaultdict(dict)
        for s in summaries:
            key = (s.owner, s.family, s.period_s, s.start_ms, s.process_type)
            mine = latest[self.ring.shard_for(s.owner, s.process_type)]
            have = mine.get(key)
            if have is None or s.n > have.n:  # one INSERT may not touch a key twice
                mine[key] = s
        for index, by_key in latest.items():
            rows = [
                (
                    clean(s.owner),
                    clean(s.process_type),
                    clean(s.family),
                    s.period_s,
                    s.start_ms,
                    s.n,
                    s.payload,
                )
                for s in by_key.values()
            ]
            days = {day_of(s.start_ms) for s in by_key.values()}
            shard = self.shards[index]
            after: list[tuple[sql.Composed, tuple[object, ...]]] = [
                (shard.q(MARK_UNSETTLED), (self.clock.now_ms(),))
            ]
            if settled is not None and settled[0] is shard:
                after.append((shard.q(CLEAR_SETTLED), settled[1:]))
            self._write(shard, "summaries", days, rows, after)
        if settled is not None and settled[0].index not in latest:  # an hour with no rows
            shard, hour, version = settled
            with shard.connect() as conn:
                conn.execute(shard.q(CLEAR_SETTLED), (hour, version))

    def write_events(self, events: Sequence[StoredEvent]) -> None:
        by_shard: dict[int, list[StoredEvent]] = defaultdict(list)
        for se in events:
            by_shard[self.ring.shard_for(se.owner, se.event.process_type)].append(se)
        for index, mine in by_shard.items():
            rows = [
                (
                    clean(se.owner),
                    se.event.ts_ms,
                    clean(se.event.source),
                    clean(se.event.kind),
                    clean(se.event.text),
                    clean(se.event.process_type),
                    clean(json.dumps(se.event.attrs)),
                )
                for se in mine
            ]
            days = {day_of(se.event.ts_ms) for se in mine}
            self._write(self.shards[index], "events", days, rows)

    def _write(
        self,
        shard: Shard,
        kind: Kind,
        days: set[int],
        rows: Sequence[tuple[object, ...]],
        after: Sequence[tuple[sql.Composed, tuple[object, ...]]] = (),
    ) -> None:
        for attempt in (1, 2):
            with shard.connect() as conn:
                shard.ensure_days(conn, kind, days)
                try:
                    with conn.transaction(), conn.cursor() as cur:
                        for i in range(0, len(rows), self.copy_rows):
                            chunk = rows[i : i + self.copy_rows]
                            with cur.copy(COPY[kind]) as copy:
                                copy.set_types(TYPES[kind])
                                for row in chunk:
                                    copy.write_row(row)
                            self._count_copy(len(chunk))
                        cur.execute(shard.q(MERGE[kind]))
                        changed = cur.rowcount
                        for statement, args in after:
                            cur.execute(statement, args)
                        log.debug(
                            "store.written",
                            extra={
                                "shard": shard.index,
                                "kind": kind,
                                "rows": len(rows),
                                "changed": changed,
                            },
                        )
                    return
                except psycopg.errors.CheckViolation as exc:
                    # A day partition another process's retention dropped after we saw it.
                    if attempt == 2 or "no partition" not in str(exc):
                        raise
                    log.warning(
                        "store.partition_vanished", extra={"shard": shard.index, "kind": kind}
                    )
                    shard.partitions.difference_update(f"{kind}_{day_name(d)}" for d in days)

    def _count_copy(self, rows: int) -> None:
        with self._stats_lock:
            self.stats.copies += 1
            self.stats.rows_copied += rows
            self.stats.largest_copy = max(self.stats.largest_copy, rows)

    # -- reading ----------------------------------------------------------------------
    def read_summaries(
        self,
        owner: str,
        family: str,
        start_ms: int,
        end_ms: int,
        process_type: str | None = None,
        period_s: int = 60,
    ) -> list[Summary]:
        if end_ms <= start_ms:
            return []
        query = (
            "SELECT start_ms, process_type, payload FROM {schema}.summaries"
            " WHERE owner = %s AND family = %s AND period_s = %s"
            " AND start_ms >= %s AND start_ms < %s"
        )
        args: list[object] = [owner, family, period_s, start_ms, end_ms]
        if process_type is None:
            shards = self.shards
        else:
            shards = [self.shards[self.ring.shard_for(owner, process_type)]]
            query += " AND process_type = %s"
            args.append(process_type)
        rows: list[tuple[int, str, bytes]] = read_each(shards, _q(query), args, binary=True)
        rows.sort(key=lambda r: (r[0], r[1]))
        return [codec.decode_summary(payload) for _, _, payload in rows]

    def series(self, owner: str) -> list[SeriesSpan]:
        query = (
            "SELECT process_type, family, min(start_ms), max(start_ms) FROM {schema}.summaries"
            " WHERE owner = %s AND period_s = 60 GROUP BY process_type, family"
        )
        # A series lives on one shard.
        return sorted(SeriesSpan(*r) for r in read_each(self.shards, _q(query), [owner]))

    def unsettled_hours(
        self, start_ms: int, end_ms: int, series: tuple[str, str] | None = None
    ) -> set[int]:
        query = "SELECT hour_ms FROM {schema}.settle_hours WHERE hour_ms >= %s AND hour_ms < %s"
        span = (tiers.hour_of(start_ms), end_ms)
        shards = self.shards if series is None else [self.shards[self.ring.shard_for(*series)]]
        return {r[0] for r in read_each(shards, _q(query), span)}

    def settle(self, now_ms: int, after_ms: int = tiers.SETTLE_AFTER_MS) -> int:
        """Build the tier rows of every due hour on every shard (see `tiers`); returns how
        many distinct hours were built on some shard.

        A shard is settled by one process at a time (a session advisory lock); sinks
        that find it taken skip it, so every sink may run this on a schedule.
        """
        done: set[int] = set()
        for shard in self.shards:
            with shard.connect() as conn:
                key = shard.settle_lock_key
                locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                if not (locked and locked[0]):
                    continue
                try:
                    marks = conn.execute(
                        shard.q(
                            "SELECT hour_ms, version, touched_ms FROM {schema}.settle_hours"
                            " ORDER BY hour_ms"
                        )
                    ).fetchall()
                    for hour, version, touched in marks:
                        if not tiers.due(hour, touched, now_ms, after_ms):
                            continue
                        hours = tiers.build_hour(
                            functools.partial(self._rows, conn, shard),
                            self._write_summaries,
                            hour,
                        )
                        self._write_summaries(hours, settled=(shard, hour, version))
                        done.add(hour)
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return len(done)

    def _rows(
        self,
        conn: psycopg.Connection[Any],
        shard: Shard,
        period_s: int,
        start_ms: int,
        end_ms: int,
    ) -> Iterator[list[bytes]]:
        """Payloads of every series' rows of period_s starting in [start_ms, end_ms), in
        groups of about SETTLE_ROWS rows of whole owners (`tiers.Reader`): one query,
        sorted by owner and streamed through a server-side cursor."""
        with conn.transaction(), conn.cursor(name="settle_rows", binary=True) as cur:
            # A cursor is planned for its first rows (cursor_tuple_fraction 0.1), which
            # could pick the primary key's owner order over a whole day instead of the
            # time index and a sort of the hour's rows.
            conn.execute("SET LOCAL cursor_tuple_fraction = 1")
            cur.itersize = 1024
            cur.execute(
                shard.q(
                    "SELECT owner, payload FROM {schema}.summaries"
                    " WHERE period_s = %s AND start_ms >= %s AND start_ms < %s ORDER BY owner"
                ),
                (period_s, start_ms, end_ms),
            )
            group: list[bytes] = []
            last = None
            for owner, payload in cur:
                if owner != last and len(group) >= SETTLE_ROWS:
                    yield group
                    group = []
                last = owner
                group.append(bytes(payload))
            if group:
                yield group

    def read_events(self, owner: str, start_ms: int, end_ms: int) -> list[EventRecord]:
        if end_ms <= start_ms:
            return []
        query = (
            "SELECT ts_ms, process_type, source, kind, text, attrs FROM {schema}.events"
            " WHERE owner = %s AND ts_ms >= %s AND ts_ms < %s"
        )
        rows: list[tuple[int, str, str, str, str, dict[str, str]]] = read_each(
            self.shards, _q(query), (owner, start_ms, end_ms)
        )
        rows.sort(key=lambda r: (r[0], r[2], r[3], r[4]))
        return [
            EventRecord(ts, pt, source, kind, text, attrs)
            for ts, pt, source, kind, text, attrs in rows
        ]

    # -- retention --------------------------------------------------------------------
    def drop_before(self, cutoff_ms: int) -> list[str]:
        """Detach and drop every day partition wholly before cutoff_ms on every shard.

        Returns the partition names dropped (`summaries_YYYYMMDD`), each once.
        """
        cutoff = day_name(day_of(cutoff_ms))
        dropped: set[str] = set()
        for shard in self.shards:
            with shard.connect() as conn:
                for name, attached, pending in conn.execute(
                    DAY_TABLES, (shard.schema, DAY_TABLE)
                ).fetchall():
                    if name[-8:] >= cutoff:
                        continue
                    parts = {
                        "parent": sql.Identifier(name.split("_")[0]),
                        "name": sql.Identifier(name),
                    }
                    shard.partitions.discard(name)
                    if attached:  # CONCURRENTLY: readers and writers of other days go on
                        how = "FINALIZE" if pending else "CONCURRENTLY"
                        conn.execute(shard.q(DETACH + how, **parts))
                    conn.execute(shard.q("DROP TABLE IF EXISTS {schema}.{name}", **parts))
                    dropped.add(name)
                    log.info(
                        "store.partition_dropped", extra={"shard": shard.index, "partition": name}
                    )
        return sorted(dropped)

    def delete_owner(self, owner: str) -> int:
        """Delete one app's rows on every shard (an app's rows live on one, but which
        one depends on the shard count it was written with)."""
        deleted = 0
        for shard in self.shards:
            with shard.connect() as conn:
                for table in ("summaries", "events"):
                    query = shard.q(
                        "DELETE FROM {schema}.{table} WHERE owner = %s", table=sql.Identifier(table)
                    )
                    deleted += conn.execute(query, (owner,)).rowcount
        return deleted

    def close(self) -> None:
        for shard in self.shards:
            shard.close()


def _q(template: str) -> Callable[[Shard], sql.Composed]:
    return lambda shard: shard.q(template)
