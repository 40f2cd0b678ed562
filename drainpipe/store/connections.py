"""Per-thread database connections that one call closes, for stores used from threadpools."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar


def postgres_connect(dsn: str, schema: str) -> Callable[[], Any]:
    """What opens an autocommit psycopg connection with `schema` created, for tables
    named `<schema>.<name>` (the registry's and the alerts'); psycopg loads on first use."""
    if not schema.isidentifier():
        raise ValueError(f"schema name {schema!r} is not a plain SQL identifier")

    def connect() -> Any:
        import psycopg

        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        return conn

    return connect


class Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


class ThreadConnections(Generic[C]):
    """Each thread gets its own connection from `connect`; `close_all` closes every one."""

    def __init__(self, connect: Callable[[], C]) -> None:
        self._connect = connect
        self._local = threading.local()
        self._all: list[C] = []
        self._lock = threading.Lock()

    def get(self) -> C:
        """This thread's connection; a new one if the last was closed or broke (psycopg
        marks a connection `broken` when its server went away, and never reconnects)."""
        conn: C | None = getattr(self._local, "conn", None)
        if conn is not None and (getattr(conn, "broken", False) or getattr(conn, "closed", False)):
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            conn = None
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._all.append(conn)
        return conn

    def close_all(self) -> None:
        """Close every thread's connection (call when none of them is in use)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
