"""The alerts' own database: rules, each rule's judged state and minute values, and the
notices it sent or will send (the outbox, which is also the history).

One SQLite file in the data directory, so `drainpipe alerts add` works whether or not a
server runs. A judged minute's new state and its notices are written in one
transaction, before anything is sent: after a crash, a notice is sent from the outbox
(none missed), and one marked sent is never sent again (none doubled, but for a crash
between a receiver's answer and that mark; the delivery id lets a receiver drop it).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from drainpipe.alert import rules
from drainpipe.alert.evaluate import Notice, State
from drainpipe.alert.rules import Rule

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rules (
    id TEXT PRIMARY KEY, app TEXT NOT NULL, owner TEXT NOT NULL, metric TEXT NOT NULL,
    threshold REAL NOT NULL, process_type TEXT NOT NULL, sensitivity INTEGER NOT NULL,
    renotify INTEGER NOT NULL, webhook TEXT, webhook_secret TEXT, slack TEXT,
    email TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS rules_owner ON rules (owner);
CREATE TABLE IF NOT EXISTS states (
    rule_id TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS minute_values (
    rule_id TEXT NOT NULL, minute_ms INTEGER NOT NULL, value REAL, n INTEGER NOT NULL,
    PRIMARY KEY (rule_id, minute_ms)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY, rule_id TEXT NOT NULL, app TEXT NOT NULL,
    process_type TEXT NOT NULL, metric TEXT NOT NULL, state TEXT NOT NULL,
    minute_ms INTEGER NOT NULL, value REAL, threshold REAL NOT NULL, events TEXT NOT NULL,
    created_ms INTEGER NOT NULL, sent_ms INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL DEFAULT 0, error TEXT, channel TEXT NOT NULL,
    UNIQUE (rule_id, state, minute_ms, channel));
CREATE INDEX IF NOT EXISTS notices_app ON notices (app, minute_ms);
CREATE TABLE IF NOT EXISTS events (
    owner TEXT NOT NULL, ts_ms INTEGER NOT NULL, kind TEXT NOT NULL,
    process_type TEXT NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (owner, ts_ms, kind, process_type, text)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
"""


@dataclass(frozen=True, slots=True)
class StoredRule:
    rule: Rule
    created_ms: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A notice in the outbox, with what its channels need."""

    id: int
    rule_id: str
    channel: str  # webhook, slack, email, or "" for a rule with none (history only)
    app: str
    process_type: str
    metric: str
    notice: Notice
    events: list[dict[str, object]]
    attempts: int
    sent_ms: int | None
    error: str | None


class AlertState:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)  # each statement commits by itself

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a notice is durable before it is sent
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- rules --------------------------------------------------------------------------

    def version(self) -> int:
        """A number that changes whenever the database changed (SQLite's data_version):
        another process added or removed a rule, say."""
        changes = self._conn().execute("PRAGMA data_version").fetchone()[0]
        rules = self._conn().execute("SELECT COUNT(*), MAX(created_ms) FROM rules").fetchone()
        return hash((changes, *rules))

    def add(self, rule: Rule, created_ms: int) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO rules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rule.id, rule.app, rule.owner, rule.metric.spec, rule.threshold,
                    rule.process_type, rule.sensitivity, rule.renotify, rule.webhook,
                    rule.webhook_secret, rule.slack, json.dumps(list(rule.email)), created_ms,
                ),
            )  # fmt: skip

    def remove(self, app: str, rule_id: str) -> bool:
        with self._tx() as c:
            gone = c.execute("DELETE FROM rules WHERE app = ? AND id = ?", (app, rule_id))
            if gone.rowcount:
                c.execute("DELETE FROM states WHERE rule_id = ?", (rule_id,))
                c.execute("DELETE FROM minute_values WHERE rule_id = ?", (rule_id,))
            return bool(gone.rowcount)

    def rules(self, app: str | None = None) -> list[StoredRule]:
        sql = "SELECT * FROM rules" + (" WHERE app = ?" if app else "") + " ORDER BY created_ms"
        rows = self._conn().execute(sql, (app,) if app else ())
        return [_rule(row) for row in rows]

    def rule(self, app: str, rule_id: str) -> StoredRule | None:
        row = (
            self._conn()
            .execute("SELECT * FROM rules WHERE app = ? AND id = ?", (app, rule_id))
            .fetchone()
        )
        return None if row is None else _rule(row)

    # -- judging ------------------------------------------------------------------------

    def put_values(self, values: Iterable[tuple[str, int, float | None, int]]) -> None:
        """(rule id, minute, value, measurements) rows; of two versions of a minute's
        summary the one with more measurements wins, as in the store."""
        rows = list(values)
        if rows:
            with self._tx() as c:
                c.executemany(
                    "INSERT INTO minute_values VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE"
                    " SET value = excluded.value, n = excluded.n WHERE excluded.n >= n",
                    rows,
                )

    def put_events(self, rows: Iterable[tuple[str, int, str, str, str]], keep_from_ms: int) -> None:
        """(owner, ts, kind, process type, text) rows, for the text of notices; a row
        read twice (after a restart) is kept once, and rows before keep_from_ms go."""
        found = list(rows)
        if found:
            with self._tx() as c:
                c.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?)", found)
                c.execute("DELETE FROM events WHERE ts_ms < ?", (keep_from_ms,))

    def events(self, owner: str, lo_ms: int, hi_ms: int) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT ts_ms, kind, process_type, text FROM events WHERE owner = ?"
            " AND ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms",
            (owner, lo_ms, hi_ms),
        )
        return [{"ts_ms": t, "kind": k, "process_type": pt, "text": x} for t, k, pt, x in rows]

    def values(self, rule_id: str, lo_ms: int, hi_ms: int) -> dict[int, float | None]:
        rows = self._conn().execute(
            "SELECT minute_ms, value FROM minute_values WHERE rule_id = ? AND minute_ms >= ?"
            " AND minute_ms <= ?",
            (rule_id, lo_ms, hi_ms),
        )
        return dict(rows.fetchall())

    def state(self, rule_id: str) -> State | None:
        row = self._conn().execute("SELECT state FROM states WHERE rule_id = ?", (rule_id,))
        found = row.fetchone()
        return None if found is None else State(**json.loads(found[0]))

    def judged(
        self,
        rule: Rule,
        state: State,
        notices: Sequence[Notice],
        events: list[dict[str, object]],
        now_ms: int,
        keep_from_ms: int,
    ) -> None:
        """Store a judged minute's state and its notices, in one transaction."""
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO states VALUES (?, ?)", (rule.id, json.dumps(asdict(state)))
            )
            for n, channel in ((n, ch) for n in notices for ch in channels(rule)):
                c.execute(
                    "INSERT OR IGNORE INTO notices (rule_id, app, process_type, metric, state,"
                    " minute_ms, value, threshold, events, created_ms, sent_ms, channel)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rule.id, rule.app, rule.process_type, rule.metric.spec, n.state,
                        n.minute_ms, n.value, n.threshold, json.dumps(events), now_ms,
                        None if channel else now_ms, channel,
                    ),
                )  # fmt: skip
            c.execute(
                "DELETE FROM minute_values WHERE rule_id = ? AND minute_ms < ?",
                (rule.id, keep_from_ms),
            )

    # -- the outbox ---------------------------------------------------------------------

    def due(self, now_ms: int, limit: int = 100) -> list[Outgoing]:
        rows = self._conn().execute(
            "SELECT * FROM notices WHERE sent_ms IS NULL AND error IS NULL AND next_ms <= ?"
            " ORDER BY id LIMIT ?",
            (now_ms, limit),
        )
        return [_outgoing(r) for r in rows]

    def sent(self, notice_id: int, now_ms: int) -> None:
        with self._tx() as c:
            c.execute("UPDATE notices SET sent_ms = ? WHERE id = ?", (now_ms, notice_id))

    def retry(self, notice_id: int, next_ms: int, error: str, give_up: bool) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE notices SET attempts = attempts + 1, next_ms = ?, error = ? WHERE id = ?",
                (next_ms, error if give_up else None, notice_id),
            )

    def history(self, app: str, start_ms: int, end_ms: int) -> list[Outgoing]:
        rows = self._conn().execute(
            "SELECT * FROM notices WHERE id IN (SELECT MIN(id) FROM notices WHERE app = ?"
            " AND minute_ms >= ? AND minute_ms < ? GROUP BY rule_id, state, minute_ms)"
            " ORDER BY minute_ms, id",
            (app, start_ms, end_ms),
        )
        return [_outgoing(r) for r in rows]

    # -- bus positions ------------------------------------------------------------------

    def positions(self) -> dict[tuple[str, int], int]:
        rows = self._conn().execute("SELECT topic, partition, next_offset FROM positions")
        return {(t, p): o for t, p, o in rows}

    def save_positions(self, positions: dict[tuple[str, int], int]) -> None:
        with self._tx() as c:
            c.executemany(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                [(t, p, o) for (t, p), o in positions.items()],
            )

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _rule(row: Any) -> StoredRule:
    rid, app, owner, metric, threshold, pt, sens, renotify, hook, secret, slack, email, ms = row
    rule = Rule(
        rid, app, owner, rules.metric(metric), threshold, pt, sens, renotify, hook, secret,
        slack, tuple(json.loads(email)),
    )  # fmt: skip
    return StoredRule(rule, ms)


def _outgoing(row: Any) -> Outgoing:
    (
        nid,
        rid,
        app,
        pt,
        metric,
        state,
        minute,
        value,
        threshold,
        events,
        _,
        sent,
        tries,
        _,
        err,
        ch,
    ) = row
    notice = Notice(state, minute, value, threshold)
    return Outgoing(nid, rid, ch, app, pt, metric, notice, json.loads(events), tries, sent, err)


def channels(rule: Rule) -> list[str]:
    """Where a rule's notices go; [""] when nowhere (they are kept as history)."""
    found = [name for name, on in (("webhook", rule.webhook), ("slack", rule.slack),
             ("email", rule.email)) if on]  # fmt: skip
    return found or [""]
