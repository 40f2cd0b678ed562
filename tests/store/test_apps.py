"""The app registry over SQLite and PostgreSQL: hashed secrets, isolation, clear errors."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from drainpipe.model import ROUTER
from drainpipe.store import upkeep
from drainpipe.store.apps import (
    CACHE_S,
    DRAIN,
    TOKEN,
    AppError,
    AppRegistry,
    digest,
    postgres_registry,
    sqlite_registry,
)
from drainpipe.store.sqlite import SqliteStore
from drainpipe.store.upkeep import purge_deleted
from tests.store.test_contract import encoded, router_summary
from tests.support import drains
from tests.support.waiting import until

PG = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgres"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppRegistry]:
    if request.param == "sqlite":
        reg = sqlite_registry(tmp_path / "apps.sqlite")
        yield reg
        reg.close()
        return
    schema = f"drainpipe_test_{uuid.uuid4().hex[:12]}"
    reg = postgres_registry(PG, schema)
    yield reg
    reg.close()
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_secrets_find_their_own_app_only(registry: AppRegistry) -> None:
    shop = registry.create("shop")
    blog = registry.create("blog")
    assert registry.by_drain_secret(shop.drain_secret) == shop.app
    assert registry.by_api_token(blog.api_token) == blog.app
    assert registry.by_drain_secret(shop.api_token) is None  # a token is no drain secret
    assert registry.by_api_token("x" * 32) is None
    assert registry.by_name("blog") == blog.app
    assert [a.name for a in registry.list()] == ["blog", "shop"]


def test_secrets_carry_at_least_128_random_bits_and_differ(registry: AppRegistry) -> None:
    a, b = registry.create("a-app"), registry.create("b-app")
    assert len(a.drain_secret) >= 22 and len(a.api_token) >= 22  # base64url: 6 bits a char
    assert len({a.drain_secret, a.api_token, b.drain_secret, b.api_token}) == 4


def test_only_digests_are_stored(tmp_path: Path) -> None:
    reg = sqlite_registry(tmp_path / "apps.sqlite")
    new = reg.create("shop")
    raw = (tmp_path / "apps.sqlite").read_bytes()
    wal = tmp_path / "apps.sqlite-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert new.drain_secret.encode() not in raw and new.api_token.encode() not in raw
    assert digest(new.drain_secret) in raw
    reg.close()


def test_a_taken_or_bad_name_is_refused_with_the_reason(registry: AppRegistry) -> None:
    registry.create("shop")
    with pytest.raises(AppError, match="already exists"):
        registry.create("shop")
    with pytest.raises(AppError, match="lowercase letters"):
        registry.create("Shop App")


class Manual:
    """A clock that moves only when told: wall time for grace periods, monotonic time
    for the lookup cache."""

    def __init__(self) -> None:
        self.ms = 1_795_017_600_000
        self.mono = 1000.0

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)
        self.mono += seconds


@pytest.fixture(params=["sqlite", "postgres"])
def two(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[AppRegistry, AppRegistry, Manual]]:
    """Two registries on one table, as two processes have, on one manual clock."""
    clock = Manual()
    if request.param == "sqlite":
        regs = [sqlite_registry(tmp_path / "apps.sqlite", clock) for _ in range(2)]
        yield regs[0], regs[1], clock
        for reg in regs:
            reg.close()
        return
    schema = f"drainpipe_test_{uuid.uuid4().hex[:12]}"
    regs = [postgres_registry(PG, schema, clock) for _ in range(2)]
    yield regs[0], regs[1], clock
    for reg in regs:
        reg.close()
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_rotated_drain_secret_stops_working_everywhere_within_the_cache_time(
    two: tuple[AppRegistry, AppRegistry, Manual],
) -> None:
    admin, server, clock = two
    shop = admin.create("shop")
    assert server.by_drain_secret(shop.drain_secret) == shop.app  # cached by the server
    new = admin.rotate("shop", DRAIN)
    assert new != shop.drain_secret
    assert admin.by_drain_secret(shop.drain_secret) is None
    assert server.by_drain_secret(new) == shop.app
    clock.advance(CACHE_S)
    assert server.by_drain_secret(shop.drain_secret) is None
    assert server.by_api_token(shop.api_token) == shop.app  # the token is untouched


def test_a_rotated_api_token_with_a_grace_period_works_until_it_ends(
    two: tuple[AppRegistry, AppRegistry, Manual],
) -> None:
    admin, server, clock = two
    shop = admin.create("shop")
    new = admin.rotate("shop", TOKEN, grace_s=3600)
    assert server.by_api_token(shop.api_token) == shop.app
    assert server.by_api_token(new) == shop.app
    clock.advance(3599)
    assert server.by_api_token(shop.api_token) == shop.app
    clock.advance(2)
    assert server.by_api_token(shop.api_token) is None
    assert server.by_api_token(new) == shop.app
    assert server.by_drain_secret(shop.api_token) is None  # a retired token is no secret


def test_a_deleted_app_loses_its_credentials_and_its_name_is_free(
    two: tuple[AppRegistry, AppRegistry, Manual],
) -> None:
    admin, server, clock = two
    shop = admin.create("shop")
    admin.rotate("shop", DRAIN, grace_s=600)
    assert server.by_api_token(shop.api_token) == shop.app
    gone = admin.delete("shop")
    assert gone == shop.app
    assert admin.by_name("shop") is None and admin.list() == []
    assert [a for a, _ in admin.deleted()] == [shop.app]
    clock.advance(CACHE_S)
    assert server.by_api_token(shop.api_token) is None
    assert server.by_drain_secret(shop.drain_secret) is None
    again = admin.create("shop")
    assert again.app.id != shop.app.id


def test_rotating_or_deleting_an_unknown_app_or_a_bad_grace_says_what_is_wrong(
    registry: AppRegistry,
) -> None:
    with pytest.raises(AppError, match="no app named 'nope'"):
        registry.rotate("nope", DRAIN)
    with pytest.raises(AppError, match="no app named 'nope'"):
        registry.delete("nope")
    registry.create("shop")
    with pytest.raises(AppError, match=r"outside 0\.\.2592000 s"):
        registry.rotate("shop", TOKEN, grace_s=-1)


def test_upkeep_purges_a_deleted_apps_data_until_late_lines_are_past(tmp_path: Path) -> None:
    clock = Manual()
    registry = sqlite_registry(tmp_path / "apps.sqlite", clock)
    store = SqliteStore(tmp_path / "m.sqlite", clock)
    try:
        shop, blog = registry.create("shop"), registry.create("blog")
        t0 = clock.ms - clock.ms % 60_000
        store.write_summaries(encoded([router_summary(a.app.id, "web", t0) for a in (shop, blog)]))
        registry.delete("shop")
        assert purge_deleted(registry, store, clock.ms, after_ms=60_000) == 1
        # A late line of the deleted app, still in the pipeline, lands after the purge.
        store.write_summaries(encoded([router_summary(shop.app.id, "web", t0 + 60_000)]))
        clock.advance(61)
        assert purge_deleted(registry, store, clock.ms, after_ms=60_000) == 1
        assert registry.deleted() == []  # forgotten once the lateness has passed
        assert store.read_summaries(shop.app.id, ROUTER.family, t0, t0 + 120_000) == []
        assert len(store.read_summaries(blog.app.id, ROUTER.family, t0, t0 + 120_000)) == 1
    finally:
        store.close()
        registry.close()


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    until(condition, what, timeout_s, every_s=0.1)


def test_rotate_and_delete_reach_a_running_server_in_seconds_and_no_secret_is_logged(
    tmp_path: Path,
) -> None:
    shop = drains.create_app(tmp_path, "shop")
    server = drains.start(tmp_path, None, "--log-level", "DEBUG")
    issued = [shop["drain_secret"], shop["api_token"]]
    try:
        line = drains.router(int(time.time() * 1000), 5, 200)

        def post(secret: str) -> int:
            return server.post(secret, drains.body([line]), 1)

        assert post(shop["drain_secret"]) == 204
        assert post("not-a-secret") == 401
        out = drains.drainpipe(
            "apps", "rotate", "shop", "--drain-secret", "--data-dir", str(tmp_path)
        )
        assert out.returncode == 0, out.stderr
        rotated = json.loads(out.stdout)
        issued.append(rotated["drain_secret"])
        assert rotated["drain_url"].endswith("/logs") and rotated["old_valid_for_s"] == 0
        assert post(rotated["drain_secret"]) == 204
        _until(lambda: post(shop["drain_secret"]) == 401, "the old drain secret refused")

        path = "/api/v1/apps/shop/events"
        assert server.get(path, shop["api_token"])[0] == 200
        refused = drains.drainpipe("apps", "delete", "shop", "--data-dir", str(tmp_path))
        assert refused.returncode == 2 and "pass --yes" in refused.stderr
        out = drains.drainpipe("apps", "delete", "shop", "--yes", "--data-dir", str(tmp_path))
        assert out.returncode == 0, out.stderr
        _until(lambda: server.get(path, shop["api_token"])[0] == 401, "the token refused")
        assert post(rotated["drain_secret"]) == 401
    finally:
        assert drains.stop(server) == 0
    logged = server.log_path.read_text()
    assert "http.limits" in logged  # the log is there to search
    for secret in issued:
        assert secret not in logged


def test_a_registry_that_fails_serves_what_it_confirmed_before(
    two: tuple[AppRegistry, AppRegistry, Manual], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, server, clock = two
    shop = admin.create("shop")
    assert server.by_drain_secret(shop.drain_secret) == shop.app
    clock.advance(CACHE_S)

    def down(*_: object) -> None:
        raise OSError("the registry's database is not answering")

    monkeypatch.setattr(server, "_find", down)
    assert server.by_drain_secret(shop.drain_secret) == shop.app  # confirmed before
    with pytest.raises(OSError, match="not answering"):
        server.by_api_token(shop.api_token)  # never confirmed: no guess


def test_a_postgres_registry_reconnects_after_its_server_dropped_the_connection() -> None:
    schema = f"drainpipe_test_{uuid.uuid4().hex[:12]}"
    clock = Manual()
    reg = postgres_registry(PG, schema, clock)
    try:
        shop = reg.create("shop")
        assert reg.by_drain_secret(shop.drain_secret) == shop.app
        assert reg.by_api_token(shop.api_token) == shop.app
        conn = reg._conn()
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        clock.advance(CACHE_S)
        # The first lookup may meet the dropped connection (served from the cache);
        # from then on the registry is back on a new one.
        assert reg.by_drain_secret(shop.drain_secret) == shop.app
        clock.advance(CACHE_S)
        assert reg.by_api_token(shop.api_token) == shop.app
        assert reg._conn() is not conn
    finally:
        reg.close()
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_purge_that_fails_leaves_the_upkeep_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Manual()
    registry = sqlite_registry(tmp_path / "apps.sqlite", clock)
    store = SqliteStore(tmp_path / "m.sqlite", clock)
    try:

        def locked() -> list[object]:
            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr(registry, "deleted", locked)
        stop = threading.Event()
        stop.set()  # one pass
        upkeep.run(store, stop, 8, 300, clock=clock, registry=registry)
        assert "upkeep.purge_failed" in caplog.text
    finally:
        store.close()
        registry.close()
