"""The app registry: apps, their drain secrets and API tokens, stored only as hashes.

Secrets are 192 random bits (`secrets.token_urlsafe(24)`), so a plain SHA-256 is a safe
one-way form: no dictionary or brute force reaches that space, and a slow KDF would only
slow down every drain request. Lookups go by hash and the match is confirmed with
`hmac.compare_digest`. The registry is its own SQLite file in the embedded default (so
`drainpipe apps create` works whether or not a server has the data directory open) and a
table in PostgreSQL when drainpipe runs as separate processes (`postgres_registry`).

Team read tokens (`create_token`) read several apps, or every app; they are stored
hashed the same way and checked by `access`.

Credentials rotate and apps are deleted while servers run, in other processes: a lookup
is cached for CACHE_S only, so every process sees a change within seconds. A rotated
secret can stay valid for a grace period (held in `<table>_retired` until it expires),
so a drain can be repointed without losing lines. A deleted app's id is remembered in
`<table>_deleted` until upkeep has purged its data (see `purge_pending`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from drainpipe.clock import SYSTEM, Clock
from drainpipe.store.connections import ThreadConnections, postgres_connect

log = logging.getLogger(__name__)

NAME = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
SECRET_BYTES = 24  # 192 bits
CACHE_S = 2.0
MAX_GRACE_S = 30 * 86_400
DRAIN, TOKEN = "drain", "token"
_COLUMN = {DRAIN: "drain_hash", TOKEN: "token_hash"}


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
    " created_ms BIGINT NOT NULL)",
    # Rotated secrets still valid until expires_ms.
    "CREATE TABLE IF NOT EXISTS {table}_retired ("
    " hash {blob} PRIMARY KEY, kind TEXT NOT NULL, app_id TEXT NOT NULL,"
    " expires_ms BIGINT NOT NULL)",
    # Deleted apps whose data is still to be purged from the store.
    "CREATE TABLE IF NOT EXISTS {table}_deleted ("
    " id TEXT PRIMARY KEY, name TEXT NOT NULL, deleted_ms BIGINT NOT NULL)",
    # Team read tokens: the app ids they read, space-separated, or '*' for every app.
    "CREATE TABLE IF NOT EXISTS {table}_tokens ("
    " id TEXT PRIMARY KEY, hash {blob} NOT NULL UNIQUE, apps TEXT NOT NULL,"
    " created_ms BIGINT NOT NULL)",
)
ALL_APPS = "*"


@dataclass(frozen=True, slots=True)
class Access:
    """What one API token may read: the ids of its apps, or every app (`ids` None);
    `own` is the app whose own token it is."""

    ids: frozenset[str] | None
    own: App | None = None

    def reads(self, app: App) -> bool:
        return self.ids is None or app.id in self.ids


@dataclass(frozen=True, slots=True)
class TeamToken:
    id: str
    apps: list[str] | None  # names; None: every app
    created_ms: int


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
        for ddl in DDL:
            self._conn().execute(ddl.format(table=table, blob=blob))
        # digest -> (app, monotonic time it was read); per kind.
        self._cache: dict[str, dict[bytes, tuple[App, float]]] = {DRAIN: {}, TOKEN: {}}
        self._access_cache: dict[bytes, tuple[Access | None, float]] = {}

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

    def _lookup(self, kind: str, secret: str) -> App | None:
        h = digest(secret)
        cache = self._cache[kind]
        hit = cache.get(h)
        now = self.clock.monotonic()
        if hit is not None and now - hit[1] < CACHE_S:
            return hit[0]
        try:
            app = self._find(kind, h)
        except Exception as exc:
            if hit is None:
                raise
            # The registry is unreachable: one it confirmed before is still served, so
            # a database restart does not turn every drain away meanwhile.
            log.warning("apps.lookup_failed_served_cached", extra={"error": str(exc)})
            return hit[0]
        cache.pop(h, None)
        if app is not None:
            if len(cache) > 100_000:
                cache.clear()  # bounded: entries past CACHE_S are misses anyway
            cache[h] = (app, now)
        return app

    def _find(self, kind: str, h: bytes) -> App | None:
        p, t, column = self._p, self._table, _COLUMN[kind]
        conn = self._conn()
        row = conn.execute(f"SELECT id, name, {column} FROM {t} WHERE {column} = {p}", (h,))
        found = row.fetchone()
        if found is None:
            found = conn.execute(
                f"SELECT a.id, a.name, r.hash FROM {t}_retired r JOIN {t} a ON a.id = r.app_id"
                f" WHERE r.hash = {p} AND r.kind = {p} AND r.expires_ms > {p}",
                (h, kind, self.clock.now_ms()),
            ).fetchone()
        if found is None or not hmac.compare_digest(bytes(found[2]), h):
            return None
        return App(found[0], found[1])

    def by_drain_secret(self, secret: str) -> App | None:
        return self._lookup(DRAIN, secret)

    def by_api_token(self, token: str) -> App | None:
        return self._lookup(TOKEN, token)

    def access(self, token: str) -> Access | None:
        """What an API token reads: an app's own token reads that app, a team token
        its apps; None for an unknown token. Cached for CACHE_S, as lookups are."""
        app = self.by_api_token(token)
        if app is not None:
            return Access(frozenset((app.id,)), app)
        h = digest(token)
        hit = self._access_cache.get(h)
        now = self.clock.monotonic()
        if hit is not None and now - hit[1] < CACHE_S:
            return hit[0]
        row = (
            self._conn()
            .execute(f"SELECT hash, apps FROM {self._table}_tokens WHERE hash = {self._p}", (h,))
            .fetchone()
        )
        found = None
        if row is not None and hmac.compare_digest(bytes(row[0]), h):
            found = Access(None if row[1] == ALL_APPS else frozenset(row[1].split()))
        if len(self._access_cache) > 10_000:
            self._access_cache.clear()  # bounded: entries past CACHE_S are misses anyway
        self._access_cache[h] = (found, now)
        return found

    def create_token(self, names: list[str] | None) -> tuple[str, str]:
        """A team token reading the named apps (None: every app, now and later);
        (its id, the token), the token shown only now."""
        if names is not None:
            if not names:
                raise AppError("a team token reads at least one app (or pass --all)")
            ids = " ".join(sorted({self._named(n).id for n in names}))
        token, token_id = secrets.token_urlsafe(SECRET_BYTES), uuid.uuid4().hex[:12]
        p = self._p
        self._conn().execute(
            f"INSERT INTO {self._table}_tokens VALUES ({p}, {p}, {p}, {p})",
            (token_id, digest(token), ALL_APPS if names is None else ids, self.clock.now_ms()),
        )
        return token_id, token

    def revoke_token(self, token_id: str) -> None:
        """The token stops reading at once (within CACHE_S in every process)."""
        t, p = self._table, self._p
        if (
            self._conn().execute(f"DELETE FROM {t}_tokens WHERE id = {p}", (token_id,)).rowcount
            == 0
        ):
            raise AppError(f"no team token with id {token_id!r} (see `drainpipe tokens list`)")

    def tokens(self) -> list[TeamToken]:
        names = {a.id: a.name for a in self.list()}
        rows = self._conn().execute(
            f"SELECT id, apps, created_ms FROM {self._table}_tokens ORDER BY created_ms, id"
        )
        return [
            TeamToken(
                r[0],
                None if r[1] == ALL_APPS else sorted(names[i] for i in r[1].split() if i in names),
                int(r[2]),
            )
            for r in rows
        ]

    def _named(self, name: str) -> App:
        app = self.by_name(name)
        if app is None:
            raise AppError(f"no app named {name!r} (see `drainpipe apps list`)")
        return app

    def rotate(self, name: str, kind: str, grace_s: int = 0) -> str:
        """A new drain secret or API token for the app; the old one keeps working for
        `grace_s` seconds (0: it stops at once, within CACHE_S in every process)."""
        if not 0 <= grace_s <= MAX_GRACE_S:
            raise AppError(f"grace period of {grace_s} s is outside 0..{MAX_GRACE_S} s (30 days)")
        app = self._named(name)
        p, t, column = self._p, self._table, _COLUMN[kind]
        now = self.clock.now_ms()
        new = secrets.token_urlsafe(SECRET_BYTES)
        with self._transaction() as conn:
            row = conn.execute(f"SELECT {column} FROM {t} WHERE id = {p}", (app.id,)).fetchone()
            if row is None:
                raise AppError(f"app {name!r} was deleted meanwhile")
            (old,) = row
            conn.execute(f"DELETE FROM {t}_retired WHERE expires_ms <= {p}", (now,))
            if grace_s:
                conn.execute(
                    f"INSERT INTO {t}_retired VALUES ({p}, {p}, {p}, {p})",
                    (bytes(old), kind, app.id, now + grace_s * 1000),
                )
            conn.execute(f"UPDATE {t} SET {column} = {p} WHERE id = {p}", (digest(new), app.id))
        return new

    def delete(self, name: str) -> App:
        """Remove the app and its credentials at once; its data goes at the next upkeep
        pass (`purge_pending`). The name is free again right away."""
        app = self._named(name)
        p, t = self._p, self._table
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO {t}_deleted VALUES ({p}, {p}, {p})",
                (app.id, app.name, self.clock.now_ms()),
            )
            conn.execute(f"DELETE FROM {t}_retired WHERE app_id = {p}", (app.id,))
            conn.execute(f"DELETE FROM {t} WHERE id = {p}", (app.id,))
        return app

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """Several statements as one (both drivers' connections are in autocommit)."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        except BaseException:
            # SQLite may have rolled back already (a full disk): keep the error that says so.
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def deleted(self) -> list[tuple[App, int]]:
        """Deleted apps whose data may still be in the store, with when they went."""
        rows = self._conn().execute(
            f"SELECT id, name, deleted_ms FROM {self._table}_deleted ORDER BY deleted_ms"
        )
        return [(App(r[0], r[1]), int(r[2])) for r in rows]

    def forget_deleted(self, app_id: str) -> None:
        self._conn().execute(f"DELETE FROM {self._table}_deleted WHERE id = {self._p}", (app_id,))

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
    return AppRegistry(
        postgres_connect(dsn, schema),
        placeholder="%s",
        blob="BYTEA",
        table=f"{schema}.apps",
        integrity_errors=(psycopg.errors.UniqueViolation,),
        clock=clock,
    )
