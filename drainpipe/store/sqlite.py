"""Embedded store: summaries and events in SQLite, one table per UTC day.

A day per table makes retention a DROP TABLE (cheap, no index churn, like the original's
schema per day) and keeps every query's index small. WAL journal mode lets the API read
while the sink writes; each thread gets its own connection.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

from drainpipe import codec
from drainpipe.clock import SYSTEM, Clock
from drainpipe.codec import EncodedSummary
from drainpipe.model import EventRecord, Summary
from drainpipe.store import DAY_MS, SeriesSpan, StoredEvent, day_name, day_of, tiers
from drainpipe.store.connections import ThreadConnections

_TABLE = re.compile(r"^(summaries|events)_(\d{8})$")
SETTLE_GROUP = 64  # (owner, family) pairs decoded at a time when settling


class SqliteStore:
    def __init__(self, path: Path, clock: Clock = SYSTEM) -> None:
        self.path = path
        self.clock = clock  # stamps writes; `settle`'s now_ms must come from it too
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conns = ThreadConnections(self._connect)
        self._known: set[str] = set()
        self._ddl = threading.Lock()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS settle_hours (hour_ms INTEGER PRIMARY KEY,"
            " version INTEGER NOT NULL, touched_ms INTEGER NOT NULL)"
        )
        self._known.update(
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        )

    def _connect(self) -> sqlite3.Connection:
        # One thread uses each; check_same_thread is off so `close` may run elsewhere.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        # Checkpoint the WAL every ~40 MB instead of every 4 MB: fewer stalls in commits.
        conn.execute("PRAGMA wal_autocheckpoint=10000")
        return conn

    def _conn(self) -> sqlite3.Connection:
        return self._conns.get()

    def _ensure(self, conn: sqlite3.Connection, kind: str, day: int) -> str:
        name = f"{kind}_{day_name(day)}"
        if name in self._known:
            return name
        with self._ddl:
            if kind == "summaries":
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} ("
                    " owner TEXT NOT NULL, family TEXT NOT NULL, period_s INTEGER NOT NULL,"
                    " process_type TEXT NOT NULL, start_ms INTEGER NOT NULL,"
                    " n INTEGER NOT NULL, payload BLOB NOT NULL,"
                    # A rowid table: rows of ~1.4 kB are too large for WITHOUT ROWID's
                    # b-tree (SQLite advises it for rows under ~1/20 of a page).
                    " PRIMARY KEY (owner, family, period_s, start_ms, process_type))"
                )
                # Settling reads one period's rows of all series by time.
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {name}_time ON {name} (period_s, start_ms)"
                )
            else:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} ("
                    " owner TEXT NOT NULL, ts_ms INTEGER NOT NULL, source TEXT NOT NULL,"
                    " kind TEXT NOT NULL, text TEXT NOT NULL, process_type TEXT NOT NULL,"
                    " attrs TEXT NOT NULL,"
                    " PRIMARY KEY (owner, ts_ms, source, kind, text)) WITHOUT ROWID"
                )
            self._known.add(name)
        return name

    def write_summaries(self, summaries: Sequence[EncodedSummary]) -> None:
        self._write_summaries(summaries)

    def _write_summaries(
        self, summaries: Sequence[EncodedSummary], settled: tuple[int, int] | None = None
    ) -> None:
        """Upsert summaries; minute rows mark their hours unsettled, in one transaction.

        `settled` = (hour, version): clear that hour's mark if its version is unchanged.
        """
        conn = self._conn()
        by_table: dict[str, list[tuple[object, ...]]] = defaultdict(list)
        touched: set[int] = set()
        for s in summaries:
            table = self._ensure(conn, "summaries", day_of(s.start_ms))
            by_table[table].append(
                (s.owner, s.family, s.period_s, s.process_type, s.start_ms, s.n, s.payload)
            )
            if s.period_s == 60:
                touched.add(tiers.hour_of(s.start_ms))
        now = self.clock.now_ms()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, rows in by_table.items():
                conn.executemany(
                    f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO UPDATE SET n = excluded.n, payload = excluded.payload"
                    f" WHERE excluded.n > {table}.n",
                    rows,
                )
            conn.executemany(
                "INSERT INTO settle_hours VALUES (?, 1, ?) ON CONFLICT DO UPDATE"
                " SET version = version + 1, touched_ms = excluded.touched_ms",
                [(h, now) for h in sorted(touched)],
            )
            if settled is not None:
                conn.execute("DELETE FROM settle_hours WHERE hour_ms = ? AND version = ?", settled)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def unsettled_hours(
        self, start_ms: int, end_ms: int, series: tuple[str, str] | None = None
    ) -> set[int]:
        rows = self._conn().execute(
            "SELECT hour_ms FROM settle_hours WHERE hour_ms >= ? AND hour_ms < ?",
            (tiers.hour_of(start_ms), end_ms),
        )
        return {r[0] for r in rows}

    def settle(self, now_ms: int, after_ms: int = tiers.SETTLE_AFTER_MS) -> int:
        """Build the tier rows of every due hour (see `tiers`); returns how many."""
        conn = self._conn()
        due = [
            (hour, version)
            for hour, version, touched in conn.execute(
                "SELECT hour_ms, version, touched_ms FROM settle_hours ORDER BY hour_ms"
            ).fetchall()
            if tiers.due(hour, touched, now_ms, after_ms)
        ]
        for hour, version in due:
            hours = tiers.build_hour(self._rows, self._write_summaries, hour)
            self._write_summaries(hours, settled=(hour, version))
        return len(due)

    def _rows(self, period_s: int, start_ms: int, end_ms: int) -> Iterator[list[bytes]]:
        """Payloads of every series' rows of period_s starting in [start_ms, end_ms), one
        day, grouped by (owner, family) up to SETTLE_GROUP of them at a time (`tiers.Reader`).
        Each (owner, family) is its own primary-key range read."""
        table = self._tables("summaries", start_ms, start_ms + 1)
        if not table:
            return
        conn = self._conn()
        span = (period_s, start_ms, end_ms)
        pairs = conn.execute(
            f"SELECT DISTINCT owner, family FROM {table[0]}"
            " WHERE period_s = ? AND start_ms >= ? AND start_ms < ?",
            span,
        ).fetchall()
        query = (
            f"SELECT payload FROM {table[0]}"
            " WHERE owner = ? AND family = ? AND period_s = ? AND start_ms >= ? AND start_ms < ?"
        )
        for i in range(0, len(pairs), SETTLE_GROUP):
            group: list[bytes] = []
            for owner, family in pairs[i : i + SETTLE_GROUP]:
                group += [r[0] for r in conn.execute(query, (owner, family, *span))]
            yield group

    def write_events(self, events: Sequence[StoredEvent]) -> None:
        conn = self._conn()
        by_table: dict[str, list[tuple[object, ...]]] = defaultdict(list)
        for se in events:
            e = se.event
            table = self._ensure(conn, "events", day_of(e.ts_ms))
            by_table[table].append(
                (se.owner, e.ts_ms, e.source, e.kind, e.text, e.process_type, json.dumps(e.attrs))
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, rows in by_table.items():
                conn.executemany(
                    f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows
                )
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _tables(self, kind: str, start_ms: int, end_ms: int) -> list[str]:
        days = range(day_of(start_ms), day_of(max(end_ms - 1, start_ms)) + 1)
        names = [f"{kind}_{day_name(d)}" for d in days]
        if any(n not in self._known for n in names):
            self.refresh()  # another process (the primary's sink) may have created it
        return [n for n in names if n in self._known]

    def read_summaries(
        self,
        owner: str,
        family: str,
        start_ms: int,
        end_ms: int,
        process_type: str | None = None,
        period_s: int = 60,
    ) -> list[Summary]:
        conn = self._conn()
        out: list[Summary] = []
        pt_clause = "" if process_type is None else " AND process_type = ?"
        for table in self._tables("summaries", start_ms, end_ms):
            args: list[object] = [owner, family, period_s, start_ms, end_ms]
            if process_type is not None:
                args.append(process_type)
            rows = conn.execute(
                f"SELECT payload FROM {table} WHERE owner = ? AND family = ? AND period_s = ?"
                f" AND start_ms >= ? AND start_ms < ?{pt_clause}",
                args,
            )
            out.extend(codec.decode_summary(r[0]) for r in rows)
        return out

    def series(self, owner: str) -> list[SeriesSpan]:
        self.refresh()
        conn = self._conn()
        spans: dict[tuple[str, str], tuple[int, int]] = {}
        for table in sorted(n for n in self._known if n.startswith("summaries_")):
            for pt, family, lo, hi in conn.execute(
                f"SELECT process_type, family, MIN(start_ms), MAX(start_ms) FROM {table}"
                " WHERE owner = ? AND period_s = 60 GROUP BY process_type, family",
                (owner,),
            ):
                have = spans.get((pt, family))
                spans[pt, family] = (
                    (lo, hi) if have is None else (min(have[0], lo), max(have[1], hi))
                )
        return sorted(SeriesSpan(pt, f, lo, hi) for (pt, f), (lo, hi) in spans.items())

    def read_events(self, owner: str, start_ms: int, end_ms: int) -> list[EventRecord]:
        conn = self._conn()
        out: list[EventRecord] = []
        for table in self._tables("events", start_ms, end_ms):
            rows = conn.execute(
                f"SELECT ts_ms, process_type, source, kind, text, attrs FROM {table}"
                " WHERE owner = ? AND ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms",
                (owner, start_ms, end_ms),
            )
            out.extend(EventRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows)
        return out

    def drop_before(self, cutoff_ms: int) -> list[str]:
        """Drop every day table wholly before cutoff_ms; return their names."""
        cutoff = day_name(day_of(cutoff_ms))
        conn = self._conn()
        dropped = []
        with self._ddl:
            for name in sorted(self._known):
                m = _TABLE.match(name)
                if m and m.group(2) < cutoff:
                    conn.execute(f"DROP TABLE IF EXISTS {name}")
                    self._known.discard(name)
                    dropped.append(name)
            first_kept = day_of(cutoff_ms) * DAY_MS
            conn.execute("DELETE FROM settle_hours WHERE hour_ms < ?", (first_kept,))
        return dropped

    def delete_owner(self, owner: str) -> int:
        """Delete one app's rows from every day table, one day per transaction."""
        self.refresh()
        conn = self._conn()
        deleted = 0
        for name in sorted(self._known):
            if _TABLE.match(name):
                deleted += conn.execute(f"DELETE FROM {name} WHERE owner = ?", (owner,)).rowcount
        return deleted

    def refresh(self) -> None:
        """Learn tables another process created (a separate sink writing this file)."""
        rows = self._conn().execute("SELECT name FROM sqlite_master WHERE type='table'")
        self._known.update(r[0] for r in rows)

    def close(self) -> None:
        """Close every thread's connection (call when no reader or writer is active)."""
        self._conns.close_all()


__all__ = ["DAY_MS", "SqliteStore"]


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back what is left of a failed transaction. SQLite has already rolled back
    after some errors (a full disk, an I/O error), and a ROLLBACK then would raise
    "no transaction is active" in place of the error that says what went wrong."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")
