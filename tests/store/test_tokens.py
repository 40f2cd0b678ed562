"""Team read tokens in the registry: what each reads, stored hashed, revoked everywhere."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from drainpipe.store.apps import CACHE_S, Access, AppError, AppRegistry, digest
from tests.store.test_apps import Manual, registry, two
from tests.support import drains

__all__ = ["registry", "two"]  # the fixtures


def test_a_team_token_reads_its_apps_and_an_all_token_every_app(registry: AppRegistry) -> None:
    shop, blog, other = (registry.create(n).app for n in ("shop", "blog", "other"))
    team_id, team = registry.create_token(["shop", "blog"])
    _, everyone = registry.create_token(None)
    access = registry.access(team)
    assert access == Access(frozenset({shop.id, blog.id}))
    assert access.reads(shop) and access.reads(blog) and not access.reads(other)
    later = registry.create("later").app
    assert registry.access(everyone) == Access(None)
    assert registry.access(everyone).reads(later)  # type: ignore[union-attr]
    own = registry.create("own")
    assert registry.access(own.api_token) == Access(frozenset({own.app.id}), own.app)
    assert registry.access("not-a-token") is None
    assert registry.access(own.drain_secret) is None  # a drain secret reads nothing
    listed = {t.id: t.apps for t in registry.tokens()}
    assert listed[team_id] == ["blog", "shop"] and None in listed.values()


def test_team_tokens_are_stored_as_digests_only(registry: AppRegistry) -> None:
    registry.create("shop")
    _, token = registry.create_token(["shop"])
    rows = registry._conn().execute("SELECT * FROM " + registry._table + "_tokens").fetchall()
    flat = [bytes(v) if isinstance(v, bytes | memoryview) else str(v) for r in rows for v in r]
    assert digest(token) in flat and not any(token in str(v) for v in flat)


def test_bad_team_tokens_are_refused_with_the_reason(registry: AppRegistry) -> None:
    registry.create("shop")
    with pytest.raises(AppError, match="no app named 'nope'"):
        registry.create_token(["shop", "nope"])
    with pytest.raises(AppError, match="at least one app"):
        registry.create_token([])
    with pytest.raises(AppError, match="no team token with id 'abc'"):
        registry.revoke_token("abc")


def test_a_revoked_token_stops_reading_in_every_process_within_the_cache_time(
    two: tuple[AppRegistry, AppRegistry, Manual],
) -> None:
    a, b, clock = two
    a.create("shop")
    token_id, token = a.create_token(["shop"])
    assert b.access(token) is not None
    a.revoke_token(token_id)
    clock.mono += CACHE_S
    assert b.access(token) is None and a.access(token) is None
    # A deleted app drops out of the tokens that read it, and a new app of its name is
    # another app: the token does not read it.
    a.create("blog")
    blogs_id, blogs = a.create_token(["blog"])
    a.delete("blog")
    assert {t.id: t.apps for t in a.tokens()}[blogs_id] == []
    again = a.create("blog").app
    access = b.access(blogs)
    assert access is not None and not access.reads(again)


def test_the_tokens_command_creates_lists_and_revokes(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return drains.drainpipe(*args, "--data-dir", str(tmp_path))

    for name in ("shop", "blog"):
        assert run("apps", "create", name).returncode == 0
    made = run("tokens", "create", "--apps", "shop,blog")
    assert made.returncode == 0, made.stderr
    team = json.loads(made.stdout)
    assert team["apps"] == ["shop", "blog"] and len(team["token"]) >= 32
    everyone = json.loads(run("tokens", "create", "--all").stdout)
    assert everyone["apps"] == "all"
    listed = [json.loads(line) for line in run("tokens", "list").stdout.splitlines()]
    assert {t["id"]: t["apps"] for t in listed} == {
        team["id"]: ["blog", "shop"],
        everyone["id"]: "all",
    }
    assert all("token" not in t for t in listed)  # shown once, when made
    assert run("tokens", "revoke", team["id"]).returncode == 0
    assert [json.loads(line)["id"] for line in run("tokens", "list").stdout.splitlines()] == [
        everyone["id"]
    ]
    bad = run("tokens", "create", "--apps", "shop,nope")
    assert bad.returncode == 2 and "no app named 'nope'" in bad.stderr
    again = run("tokens", "revoke", team["id"])
    assert again.returncode == 2 and "no team token" in again.stderr
