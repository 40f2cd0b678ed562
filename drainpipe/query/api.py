"""Read API: per-app metrics and events as JSON, bearer-token auth, downsampling on demand."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from drainpipe.clock import SYSTEM, Clock
from drainpipe.model import SCHEMAS, SKIP_REASONS, late_name, skipped_name
from drainpipe.query import downsample, plan
from drainpipe.store import Store
from drainpipe.store.apps import App, AppRegistry

MAX_POINTS = 20_160  # 14 days of minutes per series
DEFAULT_WINDOW_MS = 2 * 3_600_000
DROPS_WINDOW_MS = 24 * 3_600_000
LATE_FAMILIES = tuple(s.family for s in SCHEMAS)  # the rollup's column layouts


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_response(data: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


def parse_time(name: str, raw: str | None, default_ms: int) -> int:
    if raw is None or raw == "":
        return default_ms
    try:
        dt = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        raise ApiError(
            400, f"{name}={raw!r} is not an ISO 8601 time (like 2026-11-21T10:00:00Z)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


class Api:
    def __init__(self, registry: AppRegistry, store: Store, clock: Clock = SYSTEM) -> None:
        self.registry = registry
        self.clock = clock
        self.store = store

    def _authorize(self, request: Request) -> App:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise ApiError(401, "missing 'Authorization: Bearer <api_token>'")
        app = self.registry.by_api_token(header[7:].strip())
        if app is None:
            raise ApiError(401, "unknown API token")
        name = request.path_params["name"]
        if app.name != name:
            raise ApiError(403, f"this token is for app {app.name!r}, not {name!r}")
        return app

    def _range(self, request: Request) -> tuple[int, int, int]:
        q = request.query_params
        end = parse_time("end", q.get("end"), self.clock.now_ms())
        start = parse_time("start", q.get("start"), end - DEFAULT_WINDOW_MS)
        if start >= end:
            raise ApiError(400, f"start {q.get('start')} must be before end {q.get('end')}")
        raw_step = q.get("step", "60")
        if not raw_step.isdigit() or int(raw_step) == 0 or int(raw_step) % 60:
            raise ApiError(400, f"step={raw_step!r} must be a positive multiple of 60 seconds")
        step = int(raw_step)
        if (end - start) // (step * 1000) > MAX_POINTS:
            raise ApiError(
                400,
                f"{(end - start) // (step * 1000)} points per series is more than {MAX_POINTS}; "
                "use a larger step",
            )
        return start, end, step

    async def metrics(self, request: Request) -> Response:
        try:
            app = self._authorize(request)
            metric = request.path_params["metric"]
            found = downsample.spec(metric)
            if found is None:
                raise ApiError(
                    404,
                    f"unknown metric {metric!r}; known: {', '.join(downsample.METRICS)}, "
                    "and custom.<name> for the app's own count#, sample# and measure# metrics",
                )
            start, end, step = self._range(request)
            pt = request.query_params.get("process_type") or None
            family, _ = found
            # Whole intervals: the first step-aligned interval may start before `start`.
            lo = start - start % (step * 1000)
            rows = await run_in_threadpool(plan.read, self.store, app.id, family, lo, end, pt, step)
            body = {
                "app": app.name,
                "metric": metric,
                "step": step,
                "start": downsample.iso(start),
                "end": downsample.iso(end),
                "series": downsample.series(metric, rows, step),
            }
            return json_response(body)
        except ApiError as exc:
            return json_response({"error": str(exc)}, exc.status)

    async def app(self, request: Request) -> Response:
        """GET /api/v1/apps/{name}: what the app lost in [start, end) (default: the past
        day), by cause: lines dropped as late, by family, and lines skipped, by reason."""
        try:
            app = self._authorize(request)
            q = request.query_params
            end = parse_time("end", q.get("end"), self.clock.now_ms())
            start = parse_time("start", q.get("start"), end - DROPS_WINDOW_MS)
            if start >= end:
                raise ApiError(400, f"start {q.get('start')} must be before end {q.get('end')}")
            dropped = await run_in_threadpool(self._dropped, app.id, start, end)
            body = {
                "app": app.name,
                "start": downsample.iso(start),
                "end": downsample.iso(end),
                "dropped": dropped,
            }
            return json_response(body)
        except ApiError as exc:
            return json_response({"error": str(exc)}, exc.status)

    def _dropped(self, owner: str, start: int, end: int) -> dict[str, object]:
        def total(name: str) -> int:
            rows = plan.read(self.store, owner, "custom." + name, start, end, None, 3600)
            return round(sum(s.stats["count"].sum for s in rows if "count" in s.stats))

        late = {family: total(late_name(family)) for family in LATE_FAMILIES}
        skipped = {reason: total(skipped_name(reason)) for reason in SKIP_REASONS}
        return {
            "total": sum(late.values()) + sum(skipped.values()),
            "late": late,
            "skipped": skipped,
        }

    async def events(self, request: Request) -> Response:
        try:
            app = self._authorize(request)
            q = request.query_params
            end = parse_time("end", q.get("end"), self.clock.now_ms())
            start = parse_time("start", q.get("start"), end - DEFAULT_WINDOW_MS)
            if start >= end:
                raise ApiError(400, "start must be before end")
            rows = await run_in_threadpool(self.store.read_events, app.id, start, end)
            events = [
                {
                    "t": downsample.iso(e.ts_ms),
                    "ts_ms": e.ts_ms,
                    "kind": e.kind,
                    "process_type": e.process_type,
                    "source": e.source,
                    "text": e.text,
                    "attrs": e.attrs,
                }
                for e in rows
            ]
            return json_response({"app": app.name, "events": events})
        except ApiError as exc:
            return json_response({"error": str(exc)}, exc.status)
