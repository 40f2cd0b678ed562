"""The HTTP surface: routes of the ingress and API apps, and the server that runs them."""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from drainpipe.api import Api
from drainpipe.ingress import Ingress, Receive, Scope, Send
from drainpipe.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)


ASGIApp = Callable[[Scope, Receive, Send], Any]


def app(metrics: SelfMetrics, ingress: Ingress | None = None, api: Api | None = None) -> ASGIApp:
    """The routes of this process: POST /logs straight to the ingress, the rest through
    Starlette (the API, /metrics, /healthz)."""

    async def own_metrics(_: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    routes = [
        Route("/metrics", own_metrics, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    if api is not None:
        routes += [
            Route("/api/v1/apps/{name}/metrics/{metric}", api.metrics, methods=["GET"]),
            Route("/api/v1/apps/{name}/events", api.events, methods=["GET"]),
        ]
    others = Starlette(routes=routes)
    if ingress is None:
        return others

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/logs":
            if scope["method"] == "POST":
                return await ingress(scope, receive, send)
            response = PlainTextResponse(
                "POST drain bodies to /logs\n", status_code=405, headers={"Allow": "POST"}
            )
            return await response(scope, receive, send)
        return await others(scope, receive, send)

    return dispatch


def serve(
    asgi: ASGIApp,
    on_stop: Callable[[], None],
    host: str = "127.0.0.1",
    port: int = 5000,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, answer in-flight requests, then call on_stop."""
    server = uvicorn.Server(
        uvicorn.Config(
            asgi,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    )

    # uvicorn restores the handlers it found and then re-raises the signal it caught;
    # with these in place that re-raise is harmless and on_stop runs.
    def note(signum: int, _: object) -> None:
        log.info("drainpipe.stopping", extra={"signal": signum})

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, note)
    if sockets is None:
        log.info("http.listening", extra={"host": host, "port": port})
    try:
        server.run(sockets=sockets)
    finally:
        on_stop()
        log.info("drainpipe.stopped")
