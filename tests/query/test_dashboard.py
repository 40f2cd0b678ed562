"""The dashboard's shell and static files: versioned, cached, locked down, and vendored
exactly as the manifest pins them."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import re
import tomllib
from pathlib import Path

import httpx
from starlette.applications import Starlette

from drainpipe.query import dashboard

ROOT = Path(__file__).resolve().parents[2]


class Client:
    """GETs against the dashboard's routes in this process."""

    def __init__(self) -> None:
        self.app = Starlette(routes=dashboard.routes())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def get(self, path: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.get(path)

        return asyncio.run(go())


def client() -> Client:
    return Client()


def test_both_pages_serve_the_shell_with_a_strict_policy() -> None:
    with client() as c:
        for path in ("/", "/apps/shop"):
            r = c.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "connect-src 'self'" in csp
            assert "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
            assert r.headers["referrer-policy"] == "no-referrer"
            assert r.headers["cache-control"] == "no-cache"


def test_every_file_the_shell_names_is_served_by_its_content_hash() -> None:
    with client() as c:
        shell = c.get("/").text
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', shell)
        assert len(assets) == 5, assets
        for url in assets:
            path, _, version = url.partition("?v=")
            body = (dashboard.STATIC / path.removeprefix("/static/")).read_bytes()
            assert version == hashlib.sha256(body).hexdigest()[:12], url
            r = c.get(url)
            assert r.status_code == 200 and r.content == body
            assert "immutable" in r.headers["cache-control"]
        unversioned = c.get("/static/dashboard.js")
        assert unversioned.status_code == 200 and "immutable" not in unversioned.headers.get(
            "cache-control", ""
        )
        assert c.get("/static/../dashboard.py").status_code == 404
        assert c.get("/static/missing.js").status_code == 404


def test_vendored_files_are_the_pinned_ones_with_their_license() -> None:
    vendor = dashboard.STATIC / "vendor"
    manifest = json.loads((vendor / "vendor.json").read_text())
    for lib in manifest["libraries"]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", lib["version"]), "pin an exact version"
        assert lib["integrity"].startswith("sha512-")
        names = {entry["to"] for entry in lib["files"]}
        assert "LICENSE" in names
        for entry in lib["files"]:
            data = (vendor / lib["dir"] / entry["to"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["to"]


def test_the_package_data_globs_ship_every_static_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["drainpipe"]
    package = ROOT / "drainpipe"
    for f in dashboard.STATIC.rglob("*"):
        if f.is_file():
            rel = f.relative_to(package).as_posix()
            assert any(fnmatch.fnmatch(rel, g) and rel.count("/") == g.count("/") for g in globs), (
                rel
            )
