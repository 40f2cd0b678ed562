"""The app registry: apps, their drain secrets and API tokens, stored only as hashes.

Secrets are 192 random bits (`secrets.token_urlsafe(24)`), so a plain SHA-256 is a safe
one-way form: no dictionary or brute force reaches that space, and a slow KDF would only
slow down every drain request. Lookups go by hash and the match is confirmed with
`hmac.compare_digest`. The registry is its own SQLite file so that `drainpipe apps
create` works whether or not a server has the data directory open.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

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


class AppRegistry:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS apps ("
            " id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
            " drain_hash BLOB NOT NULL UNIQUE, token_hash BLOB NOT NULL UNIQUE,"
            " created_ms INTEGER NOT NULL)"
        )
        self._by_drain: dict[bytes, App] = {}
        self._by_token: dict[bytes, App] = {}

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def create(self, name: str) -> NewApp:
        if not NAME.match(name):
            raise AppError(
                f"app name {name!r} must be 2-63 characters of lowercase letters, digits and '-', "
                "starting with a letter (like a Heroku app name)"
            )
        app = App(uuid.uuid4().hex, name)
        drain_secret = secrets.token_urlsafe(SECRET_BYTES)
        api_token = secrets.token_urlsafe(SECRET_BYTES)
        try:
            self._conn().execute(
                "INSERT INTO apps VALUES (?, ?, ?, ?, ?)",
                (app.id, name, digest(drain_secret), digest(api_token), int(time.time() * 1000)),
            )
        except sqlite3.IntegrityError as exc:
            raise AppError(f"an app named {name!r} already exists") from exc
        return NewApp(app, drain_secret, api_token)

    def _lookup(self, column: str, secret: str, cache: dict[bytes, App]) -> App | None:
        h = digest(secret)
        app = cache.get(h)
        if app is None:
            row = (
                self._conn()
                .execute(f"SELECT id, name, {column} FROM apps WHERE {column} = ?", (h,))
                .fetchone()
            )
            if row is None or not hmac.compare_digest(row[2], h):
                return None
            app = cache[h] = App(row[0], row[1])
        return app

    def by_drain_secret(self, secret: str) -> App | None:
        return self._lookup("drain_hash", secret, self._by_drain)

    def by_api_token(self, token: str) -> App | None:
        return self._lookup("token_hash", token, self._by_token)

    def by_name(self, name: str) -> App | None:
        row = self._conn().execute("SELECT id, name FROM apps WHERE name = ?", (name,)).fetchone()
        return None if row is None else App(row[0], row[1])

    def list(self) -> list[App]:
        rows = self._conn().execute("SELECT id, name FROM apps ORDER BY name")
        return [App(r[0], r[1]) for r in rows]
