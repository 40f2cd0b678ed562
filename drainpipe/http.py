"""The HTTP surface: routes of the ingress and API apps, and the server that runs them."""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from drainpipe.api import Api
from drainpipe.ingress import Ingress
from drainpipe.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)


def app(metrics: SelfMetrics, ingress: Ingress | None = None, api: Api | None = None) -> Starlette:
    async def own_metrics(_: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    routes = [
        Route("/metrics", own_metrics, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    if ingress is not None:
        routes.append(Route("/logs", ingress.handle, methods=["POST"]))
    if api is not None:
        routes += [
            Route("/api/v1/apps/{name}/metrics/{metric}", api.metrics, methods=["GET"]),
            Route("/api/v1/apps/{name}/events", api.events, methods=["GET"]),
        ]
    return Starlette(routes=routes)


def serve(
    asgi: Starlette,
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
