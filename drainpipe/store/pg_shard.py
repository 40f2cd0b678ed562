"""One PostgreSQL shard of the store: pooled connections, its schema, day partitions.

Partitions must exist before rows arrive, so writers create missing days first, in their
own short transaction serialized by an advisory lock (see `postgres` for the layout).
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from drainpipe.clock import SYSTEM
from drainpipe.store import DAY_MS, ShardUnavailable, day_name, went_without
from drainpipe.telemetry.logs import first_line

log = logging.getLogger("drainpipe.store.postgres")

CONNECT_WAIT_S: Final = 30.0
DOWN_FOR_S: Final = 5.0
T = TypeVar("T")
Kind = Literal["summaries", "events"]

DAY_TABLE = r"^(summaries|events)_[0-9]{8}$"

_PARENT_DDL: Final = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    "CREATE TABLE IF NOT EXISTS {schema}.summaries ("
    " owner text NOT NULL, process_type text NOT NULL, family text NOT NULL,"
    " period_s integer NOT NULL, start_ms bigint NOT NULL, n bigint NOT NULL,"
    " payload bytea NOT NULL,"
    " PRIMARY KEY (owner, family, period_s, start_ms, process_type)"
    ") PARTITION BY RANGE (start_ms)",
    # Settling reads one period's rows of all series by time (see `store.tiers`).
    "CREATE INDEX IF NOT EXISTS summaries_time ON {schema}.summaries (period_s, start_ms)",
    "CREATE TABLE IF NOT EXISTS {schema}.settle_hours (hour_ms bigint PRIMARY KEY,"
    " version bigint NOT NULL, touched_ms bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {schema}.events ("
    " owner text NOT NULL, ts_ms bigint NOT NULL, source text NOT NULL, kind text NOT NULL,"
    " text text NOT NULL, process_type text NOT NULL, attrs jsonb NOT NULL,"
    " text_md5 bytea GENERATED ALWAYS AS (decode(md5(text), 'hex')) STORED,"
    " PRIMARY KEY (owner, ts_ms, source, kind, text_md5)"
    ") PARTITION BY RANGE (ts_ms)",
)
_STAGING_DDL: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS drainpipe_stage_summaries ("
    " owner text, process_type text, family text, period_s integer, start_ms bigint,"
    " n bigint, payload bytea) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS drainpipe_stage_events ("
    " owner text, ts_ms bigint, source text, kind text, text text, process_type text,"
    " attrs text) ON COMMIT DELETE ROWS",
)
COPY: Final[dict[Kind, str]] = {
    "summaries": "COPY pg_temp.drainpipe_stage_summaries FROM STDIN (FORMAT BINARY)",
    "events": "COPY pg_temp.drainpipe_stage_events FROM STDIN (FORMAT BINARY)",
}
TYPES: Final[dict[Kind, list[str]]] = {
    "summaries": ["text", "text", "text", "int4", "int8", "int8", "bytea"],
    "events": ["text", "int8", "text", "text", "text", "text", "text"],
}
MERGE: Final[dict[Kind, str]] = {
    "summaries": (
        "INSERT INTO {schema}.summaries AS cur"
        " (owner, process_type, family, period_s, start_ms, n, payload)"
        " SELECT owner, process_type, family, period_s, start_ms, n, payload"
        " FROM pg_temp.drainpipe_stage_summaries"
        " ON CONFLICT (owner, family, period_s, start_ms, process_type)"
        " DO UPDATE SET n = excluded.n, payload = excluded.payload WHERE excluded.n > cur.n"
    ),
    "events": (
        "INSERT INTO {schema}.events (owner, ts_ms, source, kind, text, process_type, attrs)"
        " SELECT owner, ts_ms, source, kind, text, process_type, attrs::jsonb"
        " FROM pg_temp.drainpipe_stage_events"
        " ON CONFLICT (owner, ts_ms, source, kind, text_md5) DO NOTHING"
    ),
}
# An open window's row is rewritten every second it changes. Free room in each page lets
# PostgreSQL put the new version beside the old one (a HOT update: no new index entry, and
# pruned without vacuum), since neither n nor payload is indexed. Events never change.
PARTITION_OPTIONS: Final[dict[Kind, str]] = {
    "summaries": " WITH (fillfactor = 70)",
    "events": "",
}
# Minute rows mark their hours unsettled, in the writing transaction; in hour order, so
# two sinks marking the same hours lock them in one order and cannot deadlock.
MARK_UNSETTLED: Final = (
    "INSERT INTO {schema}.settle_hours (hour_ms, version, touched_ms)"
    " SELECT DISTINCT start_ms - start_ms %% 3600000, 1, %s::bigint"
    " FROM pg_temp.drainpipe_stage_summaries WHERE period_s = 60 ORDER BY 1"
    " ON CONFLICT (hour_ms) DO UPDATE"
    " SET version = {schema}.settle_hours.version + 1, touched_ms = excluded.touched_ms"
)
CLEAR_SETTLED: Final = "DELETE FROM {schema}.settle_hours WHERE hour_ms = %s AND version = %s"
DETACH: Final = "ALTER TABLE {schema}.{parent} DETACH PARTITION {schema}.{name} "
# Day tables of a schema: (name, attached, detach pending), attached or left detached.
_DAY_TABLES_OF: Final = (
    "SELECT c.relname, i.inhrelid IS NOT NULL, coalesce(i.inhdetachpending, false)"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_inherits i ON i.inhrelid = c.oid"
    " WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname {match} %s"
)
DAY_TABLES: Final = _DAY_TABLES_OF.format(match="~")
DAY_TABLE_STATE: Final = _DAY_TABLES_OF.format(match="=")


def clean(text: str) -> str:
    """PostgreSQL text cannot hold NUL; a line carrying one must not wedge the sink."""
    return text.replace("\0", "\ufffd") if "\0" in text else text


@dataclass
class WriteStats:
    """What the COPY path did, for tests and the service's own metrics."""

    copies: int = 0  # COPY statements
    rows_copied: int = 0
    largest_copy: int = 0  # rows in the largest COPY


class Shard:
    """One shard: a small pool of connections and the day partitions known to exist."""

    def __init__(self, index: int, dsn: str, schema: str, max_connections: int) -> None:
        self.index = index
        self.schema = schema
        self._dsn = dsn
        self._ident = sql.Identifier(schema)
        self._lock_key = zlib.crc32(f"drainpipe:{schema}".encode())
        self.settle_lock_key = zlib.crc32(f"drainpipe:{schema}:settle".encode())
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._max = max_connections
        self._ready = False
        self._down_until = float("-inf")
        self.partitions: set[str] = set()

    def q(self, template: str, **parts: sql.Composable) -> sql.Composed:
        """SQL of a template naming {schema} (this store's schema) and other identifiers."""
        return sql.SQL(template).format(schema=self._ident, **parts)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection; transactions are explicit `conn.transaction()`."""
        if not self._slots.acquire(timeout=CONNECT_WAIT_S):
            raise TimeoutError(
                f"PostgreSQL shard {self.index}: all {self._max} connections stayed busy "
                f"for {CONNECT_WAIT_S:g} s"
            )
        conn: psycopg.Connection[Any] | None = None
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = self._open()
            yield conn
        finally:
            if conn is not None:
                if conn.broken or conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.close()
                else:
                    with self._lock:
                        self._idle.append(conn)
            self._slots.release()

    def read(self, query: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run a read on a pooled connection, once more on a new one if the first was
        dead: a pooled connection whose backend was terminated (a failover, a restart,
        pg_terminate_backend) fails only when used, and a read may simply be repeated.
        A shard that fails that too raises ShardUnavailable, and so does every read of
        it for DOWN_FOR_S after, so requests do not each wait out its timeout."""
        if SYSTEM.monotonic() < self._down_until:
            raise ShardUnavailable(
                self.index, f"PostgreSQL shard {self.index} did not answer {DOWN_FOR_S:g} s ago"
            )
        try:
            with self.connect() as conn:
                return query(conn)
        except psycopg.OperationalError as exc:
            self.close()  # the other idle connections went with the same server
            log.info("store.reconnecting", extra={"shard": self.index, "error": first_line(exc)})
        try:
            with self.connect() as conn:
                return query(conn)
        except (psycopg.OperationalError, TimeoutError) as exc:
            self._down_until = SYSTEM.monotonic() + DOWN_FOR_S
            raise ShardUnavailable(
                self.index, f"PostgreSQL shard {self.index} does not answer: {first_line(exc)}"
            ) from exc

    def _open(self) -> psycopg.Connection[Any]:
        params = conninfo_to_dict(self._dsn)
        params.setdefault("connect_timeout", 10)
        params.setdefault("application_name", "drainpipe")
        conn = psycopg.connect(make_conninfo("", **params), autocommit=True)
        try:
            if not self._ready:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                    for ddl in _PARENT_DDL:
                        conn.execute(self.q(ddl))
                rows = conn.execute(DAY_TABLES, (self.schema, DAY_TABLE)).fetchall()
                self.partitions = {
                    name for name, attached, pending in rows if attached and not pending
                }
                self._ready = True
            for ddl in _STAGING_DDL:
                conn.execute(ddl)
        except BaseException:
            conn.close()
            raise
        return conn

    def ensure_days(self, conn: psycopg.Connection[Any], kind: Kind, days: set[int]) -> None:
        """Create the missing day partitions of kind (before, not inside, a write)."""
        missing = sorted(d for d in days if f"{kind}_{day_name(d)}" not in self.partitions)
        if not missing:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            for day in missing:
                name = f"{kind}_{day_name(day)}"
                row = conn.execute(DAY_TABLE_STATE, (self.schema, name)).fetchone()
                if row is not None and row[2]:
                    raise RuntimeError(
                        f"PostgreSQL shard {self.index}: partition {self.schema}.{name} is "
                        "half-detached by an interrupted retention run; run drop_before again"
                    )
                if row is not None and not row[1]:  # detached, not yet dropped by retention
                    conn.execute(self.q("DROP TABLE {schema}.{name}", name=sql.Identifier(name)))
                if row is None or not row[1]:
                    conn.execute(
                        self.q(
                            "CREATE TABLE {schema}.{name} PARTITION OF {schema}.{parent}"
                            " FOR VALUES FROM ({lo}) TO ({hi}){options}",
                            name=sql.Identifier(name),
                            parent=sql.Identifier(kind),
                            lo=sql.Literal(day * DAY_MS),
                            hi=sql.Literal((day + 1) * DAY_MS),
                            options=sql.SQL(PARTITION_OPTIONS[kind]),
                        )
                    )
                    log.info(
                        "store.partition_created", extra={"shard": self.index, "partition": name}
                    )
        self.partitions.update(f"{kind}_{day_name(d)}" for d in missing)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def read_each(shards: list[Shard], query: sql.Composed | Callable[[Shard], sql.Composed],
              args: Sequence[object], binary: bool = False) -> list[Any]:  # fmt: skip
    """The rows of one query on each of shards. A shard that does not answer is skipped
    when the caller collects what is missing (`store.collecting_missing`) and more than
    one shard was asked; otherwise its ShardUnavailable goes up."""
    rows: list[Any] = []
    for shard in shards:
        q = query(shard) if callable(query) else query

        def fetch(conn: psycopg.Connection[Any], q: sql.Composed = q) -> list[Any]:
            return list(conn.execute(q, args, binary=binary).fetchall())

        try:
            rows.extend(shard.read(fetch))
        except ShardUnavailable as exc:
            if len(shards) == 1 or not went_without(shard.index):
                raise
            log.warning("store.shard_skipped", extra={"shard": shard.index, "error": str(exc)})
    return rows
