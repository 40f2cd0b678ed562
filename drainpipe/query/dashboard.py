"""The dashboard's pages: one HTML shell for `/` and `/apps/{name}`, and its static files.

The page is static: it reads the token from the URL fragment or the browser's storage
and draws every chart from the Metrics API in the browser, so the server learns nothing
here that the API does not already check. The shell names its files with a hash of
their content, so they are cached for good and a new release is never mixed with an
old one.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).with_name("static")
# The page loads only its own files and talks only to its own origin.
SECURITY = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_ASSET = re.compile(r'(?P<attr>src|href)="/static/(?P<path>[^"?]+)"')


def _versioned(html: str) -> str:
    """The shell with `?v=<hash>` on every static file it names."""

    def tag(match: re.Match[str]) -> str:
        digest = hashlib.sha256((STATIC / match["path"]).read_bytes()).hexdigest()[:12]
        return f'{match["attr"]}="/static/{match["path"]}?v={digest}"'

    return _ASSET.sub(tag, html)


class CachedStatic(StaticFiles):
    """Static files, cached by browsers for a year when asked for by content hash."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if b"v=" in scope.get("query_string", b"") and response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        response.headers.update(SECURITY)
        return response


def routes() -> list[BaseRoute]:
    shell = _versioned((STATIC / "index.html").read_text())

    async def page(_: Request) -> Response:
        return HTMLResponse(shell, headers={**SECURITY, "Cache-Control": "no-cache"})

    return [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/apps/{name}", page, methods=["GET", "HEAD"]),
        Mount("/static", CachedStatic(directory=STATIC), name="static"),
    ]
