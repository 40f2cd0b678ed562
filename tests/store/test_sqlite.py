"""The SQLite store where it differs from the others: a full disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from drainpipe.clock import FixedClock
from drainpipe.model import MINUTE_MS, ROUTER
from drainpipe.store.sqlite import SqliteStore
from tests.store.test_contract import T0, encoded, router_summary


def test_a_full_database_reports_that_it_is_full_and_takes_writes_again_after(
    tmp_path: Path, clock: FixedClock
) -> None:
    """SQLite rolls a transaction back itself when the disk is full; the store must say
    what happened, not that there was nothing to roll back, and work once there is room."""
    store = SqliteStore(tmp_path / "m.sqlite", clock)
    try:
        store.write_summaries(encoded([router_summary("app-a", "web", T0)]))
        conn = store._conn()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        many = [router_summary("app-a", "web", T0 + m * MINUTE_MS) for m in range(1, 400)]
        with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
            store.write_summaries(encoded(many))
        conn.execute("PRAGMA max_page_count = 1073741823")
        store.write_summaries(encoded(many))
        got = store.read_summaries("app-a", ROUTER.family, T0, T0 + 400 * MINUTE_MS, "web")
        assert len(got) == 400
    finally:
        store.close()
