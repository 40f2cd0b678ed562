"""The app registry over SQLite and PostgreSQL: hashed secrets, isolation, clear errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from drainpipe.apps import AppError, AppRegistry, digest, postgres_registry, sqlite_registry

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
