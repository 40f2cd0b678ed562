"""The drain endpoint's answers, called as the HTTP server calls it (ASGI), on a real
embedded bus and app registry."""

from __future__ import annotations

import asyncio
import base64
import gzip
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.clock import FixedClock
from drainpipe.config import Config
from drainpipe.ingest.acceptor import LocalAcceptor
from drainpipe.ingest.drain import Ingress
from drainpipe.model import ROUTER
from drainpipe.service import http
from drainpipe.store.apps import NewApp, sqlite_registry
from drainpipe.telemetry.metrics import SelfMetrics
from tests.conftest import FIXED_NOW_MS
from tests.support import drains


class Drain:
    def __init__(self, tmp: Path, max_body_bytes: int = 8 << 20) -> None:
        self.bus = EmbeddedBus(tmp / "bus")
        self.registry = sqlite_registry(tmp / "apps.sqlite")
        self.app: NewApp = self.registry.create("shop")
        self.metrics = SelfMetrics()
        config = replace(Config(), max_body_bytes=max_body_bytes)
        acceptor = LocalAcceptor(self.bus.producer())
        ingress = Ingress(self.registry, acceptor, self.metrics, config, FixedClock(FIXED_NOW_MS))
        self.asgi = http.app(self.metrics, ingress)

    def auth(self, secret: str | None = None) -> str:
        token = base64.b64encode(f"d:{secret or self.app.drain_secret}".encode()).decode()
        return f"Basic {token}"

    def post(
        self, body: bytes | AsyncIterator[bytes], count: int, **headers: str
    ) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.asgi)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.post(
                    "/logs",
                    content=body,
                    headers={
                        "Content-Type": "application/logplex-1",
                        "Logplex-Msg-Count": str(count),
                        "Authorization": self.auth(),
                        **{k.replace("_", "-"): v for k, v in headers.items()},
                    },
                )

        return asyncio.run(go())

    def close(self) -> None:
        self.registry.close()
        self.bus.close()


@pytest.fixture
def drain(tmp_path: Path) -> Iterator[Drain]:
    d = Drain(tmp_path)
    yield d
    d.close()


LINES = [drains.router(FIXED_NOW_MS - 60_000 + i, 5 + i, 200) for i in range(3)]


def test_a_good_body_is_stored_and_answered_204(drain: Drain) -> None:
    resp = drain.post(drains.body(LINES), 3)
    assert (resp.status_code, resp.content) == (204, b"")
    assert len(drain.bus.tail(ROUTER.topic)) == 1


def test_a_body_sent_in_chunks_is_read_whole(drain: Drain) -> None:
    body = drains.body(LINES)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    assert drain.post(chunks(), 3).status_code == 204
    assert len(drain.bus.tail(ROUTER.topic)) == 1


def test_unknown_credentials_are_401_with_a_challenge(drain: Drain) -> None:
    resp = drain.post(drains.body(LINES), 3, Authorization=drain.auth("wrong"))
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Basic realm="drainpipe drain"'
    assert "drain_url" in resp.text
    assert drain.bus.tail(ROUTER.topic) == []


def test_a_body_over_the_limit_is_413_whether_announced_or_not(tmp_path: Path) -> None:
    drain = Drain(tmp_path, max_body_bytes=100)
    try:
        body = drains.body(LINES)
        resp = drain.post(body, 3)
        assert resp.status_code == 413 and f"body of {len(body)} bytes exceeds 100" in resp.text

        async def unannounced() -> AsyncIterator[bytes]:  # chunked: no Content-Length
            yield body

        resp = drain.post(unannounced(), 3)
        assert resp.status_code == 413 and "body exceeds 100 bytes" in resp.text
        assert drain.bus.tail(ROUTER.topic) == []
    finally:
        drain.close()


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        ({"Content-Type": "text/plain"}, 415, "is not application/logplex-1"),
        ({"Logplex-Msg-Count": "three"}, 400, "'three' is not a number"),
        # int() would read these as 3 or 10: digits only
        ({"Logplex-Msg-Count": "1_0"}, 400, "'1_0' is not a number"),
        ({"Logplex-Msg-Count": "+3"}, 400, "'+3' is not a number"),
        ({"Logplex-Msg-Count": "2"}, 400, "says 2 messages but the body has 3 frames"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    drain: Drain, headers: dict[str, str], status: int, says: str
) -> None:
    resp = drain.post(drains.body(LINES), 3, **headers)
    assert resp.status_code == status and says in resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    assert drain.bus.tail(ROUTER.topic) == []


def test_a_closed_bus_is_503_with_retry_after(drain: Drain) -> None:
    drain.bus.close()
    resp = drain.post(drains.body(LINES), 3)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "1"


def test_other_methods_on_logs_are_405_and_other_paths_still_route(drain: Drain) -> None:
    async def go() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=drain.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/logs"), await client.get("/healthz")

    logs, health = asyncio.run(go())
    assert logs.status_code == 405 and logs.headers["allow"] == "POST"
    assert (health.status_code, health.json()["status"]) == (200, "ok")


def test_a_client_gone_mid_body_stores_nothing_and_gets_no_answer(drain: Drain) -> None:
    """A stored part of a frame would turn Logplex's full retry into a duplicate."""
    body = drains.body(LINES)
    cut = body.index(b"\n") + 1  # the first frame whole, then the client leaves
    incoming: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": body[:cut], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    headers = [
        (b"content-type", b"application/logplex-1"),
        (b"logplex-msg-count", b"3"),
        (b"authorization", drain.auth().encode()),
    ]
    scope = {"type": "http", "method": "POST", "path": "/logs", "headers": headers}

    async def call() -> None:
        await drain.asgi(scope, receive, send)

    asyncio.run(call())
    assert sent == []
    assert drain.bus.tail(ROUTER.topic) == []
    assert b'drainpipe_drain_batches_rejected_total{reason="disconnected"} 1.0' in (
        drain.metrics.render()
    )


def test_a_gzip_body_is_decoded_and_stored(drain: Drain) -> None:
    """log-shuttle -gzip: `Content-Encoding: gzip` on an octet-counted body."""
    resp = drain.post(gzip.compress(drains.body(LINES)), 3, Content_Encoding="gzip")
    assert (resp.status_code, resp.content) == (204, b"")
    assert len(drain.bus.tail(ROUTER.topic)) == 1


@pytest.mark.parametrize(
    ("body", "encoding", "status", "says"),
    [
        # gzip announced but a plain body: the length prefix is not a gzip header
        (drains.body(LINES), "gzip", 400, "the body is not gzip"),
        # a gzip stream cut short (a client that gave up mid-write)
        (gzip.compress(drains.body(LINES))[:-9], "gzip", 400, "ends before the gzip stream"),
        # two bodies: one gzip stream and bytes after it
        (gzip.compress(drains.body(LINES)) + b"junk", "gzip", 400, "bytes follow the gzip"),
        (drains.body(LINES), "br", 415, "Content-Encoding 'br' is not accepted"),
        (drains.body(LINES), "deflate", 415, "send gzip or no encoding"),
    ],
)
def test_bad_encodings_say_what_is_wrong(
    drain: Drain, body: bytes, encoding: str, status: int, says: str
) -> None:
    resp = drain.post(body, 3, Content_Encoding=encoding)
    assert resp.status_code == status and says in resp.text
    assert drain.bus.tail(ROUTER.topic) == []


def test_the_body_limit_holds_for_the_decoded_gzip_body(tmp_path: Path) -> None:
    """A zip bomb: 1 kB on the wire that inflates far past the limit is refused."""
    drain = Drain(tmp_path, max_body_bytes=4096)
    try:
        bomb = gzip.compress(b"0" * 1_000_000)
        assert len(bomb) < 4096
        resp = drain.post(bomb, 1, Content_Encoding="gzip")
        assert resp.status_code == 413 and "decodes to more than 4096 bytes" in resp.text
        assert drain.bus.tail(ROUTER.topic) == []
    finally:
        drain.close()


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        ("Bearer {secret}", 204),  # log-shuttle -bearer-token
        ("bearer {secret}", 204),  # the scheme is case-insensitive
        ("Bearer wrong", 401),
        ("Bearer ", 401),
        ("Token {secret}", 401),
    ],
)
def test_a_bearer_drain_secret_is_accepted(drain: Drain, authorization: str, status: int) -> None:
    header = authorization.format(secret=drain.app.drain_secret)
    assert drain.post(drains.body(LINES), 3, Authorization=header).status_code == status
