"""The HTTP surface: routes of the ingress and API apps, and the server that runs them."""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from drainpipe import __version__
from drainpipe.alert import openapi as alert_openapi
from drainpipe.alert.api import AlertsApi
from drainpipe.config import Config
from drainpipe.ingest.drain import Ingress
from drainpipe.query import dashboard, openapi
from drainpipe.query.api import Api
from drainpipe.service import guard
from drainpipe.service.observe import Observed
from drainpipe.telemetry.metrics import SelfMetrics

log = logging.getLogger(__name__)


HealthReport = Callable[[], Awaitable[dict[str, Any]]]


async def _alive() -> dict[str, Any]:
    return {"status": "ok", "problems": [], "stages": {}}


def api_document() -> dict[str, Any]:
    """The OpenAPI document of every route: the read API's, with the alerts API's."""
    doc = openapi.document(__version__)
    doc["paths"].update(alert_openapi.paths())
    doc["components"]["schemas"] = {**doc["components"]["schemas"], **alert_openapi.ALERT_SCHEMAS}
    return doc


def app(
    metrics: SelfMetrics,
    ingress: Ingress | None = None,
    api: Api | None = None,
    health: HealthReport = _alive,
    alerts: AlertsApi | None = None,
    access_log: bool = False,
) -> ASGIApp:
    """The routes of this process: POST /logs straight to the ingress, the rest through
    Starlette (the API and the dashboard's pages, /metrics, /healthz). /healthz answers
    200 while every stage of the pipeline is well, else 503, with the report (see
    `health`) as JSON."""

    async def own_metrics(_: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def healthz(_: Request) -> Response:
        report = await health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    async def openapi_json(_: Request) -> Response:
        return JSONResponse(api_document())

    routes: list[BaseRoute] = [
        Route("/metrics", own_metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
    if api is not None:
        routes += [
            Route("/api/v1/apps", api.apps, methods=["GET"]),
            Route("/api/v1/apps/{name}", api.app, methods=["GET"]),
            Route("/api/v1/apps/{name}/metrics/{metric}", api.metrics, methods=["GET"]),
            Route("/api/v1/apps/{name}/events", api.events, methods=["GET"]),
            *dashboard.routes(),
        ]
    if alerts is not None:
        routes += [
            Route("/api/v1/apps/{name}/alerts", alerts.rules, methods=["GET"]),
            Route("/api/v1/apps/{name}/alerts", alerts.create, methods=["POST"]),
            Route("/api/v1/apps/{name}/alerts/history", alerts.history, methods=["GET"]),
            Route("/api/v1/apps/{name}/alerts/{id}", alerts.remove, methods=["DELETE"]),
        ]
    # Answers to browsers and API clients that accept gzip: JSON points shrink ~8x.
    others = Starlette(
        routes=routes,
        middleware=[
            Middleware(Observed, metrics=metrics, routes=routes, access_log=access_log),
            Middleware(GZipMiddleware, minimum_size=1024),
        ],
    )
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


def server(asgi: ASGIApp, config: Config, metrics: SelfMetrics) -> uvicorn.Server:
    """A uvicorn server with drainpipe's connection limits (see `guard`), and TLS when
    the config names a certificate."""
    return uvicorn.Server(
        uvicorn.Config(
            asgi,
            host=config.host,
            port=config.port,
            loop="uvloop",
            http=guard.protocol(config, metrics),  # type: ignore[arg-type]
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
            ssl_certfile=str(config.certfile) if config.certfile else None,
            ssl_keyfile=str(config.keyfile) if config.keyfile else None,
        )
    )


def serve(
    asgi: ASGIApp,
    on_stop: Callable[[], None],
    config: Config,
    metrics: SelfMetrics,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, answer in-flight requests, then call on_stop."""
    running = server(asgi, config, metrics)

    # uvicorn restores the handlers it found and then re-raises the signal it caught;
    # with these in place that re-raise is harmless and on_stop runs.
    def note(signum: int, _: object) -> None:
        log.info("drainpipe.stopping", extra={"signal": signum})

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, note)
    if sockets is None:
        scheme = "https" if config.certfile else "http"
        log.info(
            "http.listening", extra={"host": config.host, "port": config.port, "scheme": scheme}
        )
    try:
        running.run(sockets=sockets)
    finally:
        on_stop()
        log.info("drainpipe.stopped")
