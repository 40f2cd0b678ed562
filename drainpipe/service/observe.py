"""HTTP answers observed: time and status class per route, and an optional access log.

ASGI middleware around the API, dashboard and health routes (the drain endpoint has
its own counters and skips it: it is the hot path). Routes are labelled by their
template (`/api/v1/apps/{name}/metrics/{metric}`), so an app name never becomes a
label; a path that matches no route is `other`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drainpipe.clock import SYSTEM
from drainpipe.telemetry.metrics import SelfMetrics

log = logging.getLogger("drainpipe.http.access")


class Observed:
    def __init__(
        self,
        app: ASGIApp,
        metrics: SelfMetrics,
        routes: Sequence[BaseRoute],
        access_log: bool = False,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = list(routes)
        self.access_log = access_log

    def _route(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", "other"))
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = SYSTEM.monotonic()
        status = [500]  # what an exception before any answer becomes

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            took = SYSTEM.monotonic() - started
            route = self._route(scope)
            self.metrics.http_seconds.labels(route).observe(took)
            self.metrics.http_responses.labels(route, f"{status[0] // 100}xx").inc()
            if self.access_log:
                log.info(
                    "http.access",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status[0],
                        "ms": round(took * 1000, 2),
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                )
