"""The alerts API: an app's rules (list, create, remove) and the history of its notices.

Same tokens as the Metrics API (`store.access`): a token that reads an app reads its
rules (receiver URLs masked) and history; creating and removing rules takes the app's own
API token, as team tokens only read. A created rule's webhook secret is in the answer
to its creation only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from drainpipe.alert import targets
from drainpipe.alert.manage import make, shown
from drainpipe.alert.rules import RuleError
from drainpipe.alert.state import AlertState, Outgoing
from drainpipe.clock import SYSTEM, Clock
from drainpipe.model import iso, parse_iso
from drainpipe.store.access import Denied, authorize
from drainpipe.store.apps import App, AppRegistry

HISTORY_MS = 24 * 3_600_000
MAX_HISTORY_MS = 400 * 86_400_000
FIELDS = {
    "metric": str, "threshold": (int, float), "process_type": str, "sensitivity": int,
    "renotify": int, "webhook": str, "slack": str, "email": list,
}  # fmt: skip


def _json(data: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


class Problem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AlertsApi:
    def __init__(
        self,
        registry: AppRegistry,
        state: AlertState,
        clock: Clock = SYSTEM,
        nets: tuple[targets.Network, ...] = (),
    ) -> None:
        self.registry = registry
        self.state = state
        self.clock = clock
        self.nets = nets

    def _app(self, request: Request, manage: bool) -> App:
        header = request.headers.get("authorization", "")
        try:
            return authorize(self.registry, header, request.path_params["name"], manage)
        except Denied as exc:
            raise Problem(exc.status, str(exc)) from None

    async def _answer(
        self,
        request: Request,
        handler: Callable[[Request, App], Awaitable[Response]],
        manage: bool = False,
    ) -> Response:
        try:
            app = await run_in_threadpool(self._app, request, manage)
            return await handler(request, app)
        except Problem as exc:
            return _json({"error": str(exc)}, exc.status)
        except RuleError as exc:
            return _json({"error": str(exc)}, 400)

    async def rules(self, request: Request) -> Response:
        """GET /api/v1/apps/{name}/alerts: the app's rules."""

        async def go(_: Request, app: App) -> Response:
            stored = await run_in_threadpool(self.state.rules, app.name)
            return _json({"app": app.name, "rules": [shown(s.rule, s.created_ms) for s in stored]})

        return await self._answer(request, go)

    async def create(self, request: Request) -> Response:
        """POST /api/v1/apps/{name}/alerts: a new rule, from a JSON object of the CLI's
        `alerts add` options; 201 with the rule and, for a webhook, its secret."""

        async def go(req: Request, app: App) -> Response:
            try:
                body = msgspec.json.decode(await req.body())
            except msgspec.DecodeError as exc:
                raise Problem(400, f"the body is not JSON: {exc}") from None
            if not isinstance(body, dict):
                raise Problem(400, "the body must be a JSON object of the rule's fields")
            for key, value in body.items():
                kind = FIELDS.get(key)
                if kind is None:
                    raise Problem(400, f"unknown field {key!r}; fields: {', '.join(FIELDS)}")
                if value is not None and (
                    not isinstance(value, kind) or isinstance(value, bool)  # type: ignore[arg-type]
                ):
                    raise Problem(400, f"field {key!r} has the wrong type")
            for key in ("metric", "threshold"):
                if key not in body:
                    raise Problem(400, f"field {key!r} is required")
            email = body.get("email") or []
            if not all(isinstance(a, str) for a in email):
                raise Problem(400, "field 'email' is a list of addresses")
            try:
                threshold = float(body["threshold"])
            except OverflowError:
                raise Problem(400, "field 'threshold' is too large") from None
            sensitivity = body.get("sensitivity")
            renotify = body.get("renotify")
            rule = make(
                self.registry, app.name, body["metric"], threshold,
                body.get("process_type") or "web", 5 if sensitivity is None else sensitivity,
                60 if renotify is None else renotify, body.get("webhook"), body.get("slack"),
                tuple(email), self.nets,
            )  # fmt: skip
            now = self.clock.now_ms()
            await run_in_threadpool(self.state.add, rule, now)
            out = shown(rule, now)
            if rule.webhook_secret:
                out["webhook_secret"] = rule.webhook_secret
            return _json(out, 201)

        return await self._answer(request, go, manage=True)

    async def remove(self, request: Request) -> Response:
        """DELETE /api/v1/apps/{name}/alerts/{id}."""

        async def go(req: Request, app: App) -> Response:
            rule_id = req.path_params["id"]
            if not await run_in_threadpool(self.state.remove, app.name, rule_id):
                raise Problem(404, f"{app.name} has no rule {rule_id!r}")
            return _json({"id": rule_id, "removed": True})

        return await self._answer(request, go, manage=True)

    async def history(self, request: Request) -> Response:
        """GET /api/v1/apps/{name}/alerts/history?start=&end=: every notice of the app's
        rules whose minute is in [start, end) (default: the past day)."""

        async def go(req: Request, app: App) -> Response:
            q = req.query_params
            end = self._time(q.get("end"), "end", self.clock.now_ms())
            start = self._time(q.get("start"), "start", end - HISTORY_MS)
            if not start < end or end - start > MAX_HISTORY_MS:
                raise Problem(400, "start must be before end, and at most 400 days before it")
            found = await run_in_threadpool(self.state.history, app.name, start, end)
            items = [_notice(o) for o in found]
            return _json({"app": app.name, "start": iso(start), "end": iso(end), "history": items})

        return await self._answer(request, go)

    @staticmethod
    def _time(raw: str | None, name: str, default: int) -> int:
        if not raw:
            return default
        ms = parse_iso(raw)
        if ms is None:
            raise Problem(400, f"{name}={raw!r} is not an ISO 8601 time (2026-11-21T10:00:00Z)")
        return ms


def _notice(o: Outgoing) -> dict[str, Any]:
    n = o.notice
    return {
        "rule_id": o.rule_id,
        "metric": o.metric,
        "process_type": o.process_type,
        "state": n.state,
        "minute": iso(n.minute_ms),
        "minute_ms": n.minute_ms,
        "value": n.value,
        "threshold": n.threshold,
        "sent": None if o.sent_ms is None else iso(o.sent_ms),
        "error": o.error,
    }
