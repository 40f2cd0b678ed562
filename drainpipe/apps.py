"""The app registry: apps, their drain secrets and API tokens, stored only as hashes.

Secrets are 192 random bits (`secrets.token_urlsafe(24)`), so a plain SHA-256 is a safe
one-way form: no dictionary or brute force reaches that space, and a slow KDF would only
slow down every drain request. Lookups go by hash and the match is confirmed with
`hmac.compare_digest`. The registry is its own SQLite file in the embedded default (so
`drainpipe apps create` works whether or not a server has the data directory open) and a
table in PostgreSQL when drainpipe runs as separate processes (`postgres_registry`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from drainpipe.clock import SYSTEM, Clock
from drainpipe.connections import ThreadConnections

NAME = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
SECRET_BYTES = 24  # 192 bits


class AppError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class App:
    id: str  # the owner of every measurement of this app
    name: str


@dataclass(frozen=True, slots=True)
class NewApp:
    app: App
    drain_secret: str
    api_token: str


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class Connection(Protocol):
    """What sqlite3 and psycopg 3 connections (autocommit) both offer."""

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...

    def close(self) -> None: ...


DDL = (
    "CREATE TABLE IF NOT EXISTS {table} ("
    " id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " drain_hash {blob} NOT NULL UNIQUE, token_hash {blob} NOT NULL UNIQUE,"
    " created_ms BIGINT NOT NULL)"
)


class AppRegistry:
    """Apps in one SQL table; `connect` gives each thread its own connection."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        placeholder: str = "?",
        blob: str = "BLOB",
        table: str = "apps",
        integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,),
        clock: Clock = SYSTEM,
    ) -> None:
        self.clock = clock
        self._p = placeholder
        self._table = table
        self._integrity_errors = integrity_errors
        self._conns = ThreadConnections(connect)
        self._conn().execute(DDL.format(table=table, blob=blob))
        self._by_drain: dict[bytes, App] = {}
        self._by_token: dict[bytes, App] = {}

    def _conn(self) -> Connection:
        return self._conns.get()

    def close(self) -> None:
        """Close every thread's connection (call when no request is in flight)."""
        self._conns.close_all()

    def create(self, name: str) -> NewApp:
        if not NAME.match(name):
            raise AppError(
                f"app name {name!r} must be 2-63 characters of lowercase letters, digits and '-', "
                "starting with a letter (like a Heroku app name)"
            )
        app = App(uuid.uuid4().hex, name)
        drain_secret = secrets.token_urlsafe(SECRET_BYTES)
        api_token = secrets.token_urlsafe(SECRET_BYTES)
        p = self._p
        try:
            self._conn().execute(
                f"INSERT INTO {self._table} VALUES ({p}, {p}, {p}, {p}, {p})",
                (app.id, name, digest(drain_secret), digest(api_token), self.clock.now_ms()),
            )
        except self._integrity_errors as exc:
            raise AppError(f"an app named {name!r} already exists") from exc
        return NewApp(app, drain_secret, api_token)

    def _lookup(self, column: str, secret: str, cache: dict[bytes, App]) -> App | None:
        h = digest(secret)
        app = cache.get(h)
        if app is None:
            sql = f"SELECT id, name, {column} FROM {self._table} WHERE {column} = {self._p}"
            row = self._conn().execute(sql, (h,)).fetchone()
            if row is None or not hmac.compare_digest(bytes(row[2]), h):
                return None
            app = cache[h] = App(row[0], row[1])
        return app

    def by_drain_secret(self, secret: str) -> App | None:
        return self._lookup("drain_hash", secret, self._by_drain)

    def by_api_token(self, token: str) -> App | None:
        return self._lookup("token_hash", token, self._by_token)

    def by_name(self, name: str) -> App | None:
        row = (
            self._conn()
            .execute(f"SELECT id, name FROM {self._table} WHERE name = {self._p}", (name,))
            .fetchone()
        )
        return None if row is None else App(row[0], row[1])

    def list(self) -> list[App]:
        rows = self._conn().execute(f"SELECT id, name FROM {self._table} ORDER BY name")
        return [App(r[0], r[1]) for r in rows]


def sqlite_registry(path: Path, clock: Clock = SYSTEM) -> AppRegistry:
    path.parent.mkdir(parents=True, exist_ok=True)

    def connect() -> Connection:
        # Used by one thread only; check_same_thread off so `close` may run elsewhere.
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    return AppRegistry(connect, clock=clock)


def postgres_registry(dsn: str, schema: str = "drainpipe", clock: Clock = SYSTEM) -> AppRegistry:
    import psycopg

    if not schema.isidentifier():
        raise AppError(f"schema name {schema!r} is not a plain SQL identifier")

    def connect() -> Connection:
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        return conn

    return AppRegistry(
        connect,
        placeholder="%s",
        blob="BYTEA",
        table=f"{schema}.apps",
        integrity_errors=(psycopg.errors.UniqueViolation,),
        clock=clock,
    )
