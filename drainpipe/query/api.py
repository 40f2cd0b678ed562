"""Read API: per-app metrics and events as JSON, bearer-token auth, downsampling on demand."""

from __future__ import annotations

from typing import Final

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from drainpipe.clock import SYSTEM, Clock
from drainpipe.model import RESERVED_MARK, SCHEMAS, SKIP_REASONS, late_name, parse_iso, skipped_name
from drainpipe.query import downsample, plan
from drainpipe.store import ShardUnavailable, Store, collecting_missing
from drainpipe.store.access import Denied, access_of, authorize
from drainpipe.store.apps import Access, App, AppRegistry
from drainpipe.telemetry.metrics import SelfMetrics

MAX_POINTS = 20_160  # 14 days of minutes per series
DEFAULT_WINDOW_MS = 2 * 3_600_000
DROPS_WINDOW_MS = 24 * 3_600_000
MAX_SPAN_MS = 400 * 86_400_000
# Heroku's Metrics tab: each window ending now, in seconds, and its resolution.
WINDOWS: Final = {
    "2h": (2 * 3600, 60),
    "24h": (24 * 3600, 600),
    "72h": (72 * 3600, 3600),
    "7d": (7 * 86400, 7200),
}
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
    ms = parse_iso(raw)
    if ms is None:
        raise ApiError(400, f"{name}={raw!r} is not an ISO 8601 time (like 2026-11-21T10:00:00Z)")
    return ms


class Api:
    def __init__(
        self,
        registry: AppRegistry,
        store: Store,
        clock: Clock = SYSTEM,
        retention_days: int = 8,
        metrics: SelfMetrics | None = None,
    ) -> None:
        self.counters = metrics
        self.registry = registry
        self.clock = clock
        self.store = store
        self.retention_days = retention_days  # of every resolution: days are dropped whole

    def _access(self, request: Request) -> Access:
        try:
            return access_of(self.registry, request.headers.get("authorization", ""))
        except Denied as exc:
            raise ApiError(exc.status, str(exc)) from None

    def _authorize(self, request: Request) -> App:
        """The app of the path, if the token may read it."""
        header = request.headers.get("authorization", "")
        try:
            return authorize(self.registry, header, request.path_params["name"])
        except Denied as exc:
            raise ApiError(exc.status, str(exc)) from None

    def _span(self, request: Request, default_ms: int = DEFAULT_WINDOW_MS) -> tuple[int, int, int]:
        """(start, end, the window's resolution) from `window`, `start` and `end`."""
        q = request.query_params
        span_ms, default_step = default_ms, 60
        if "window" in q:
            found = WINDOWS.get(q["window"])
            if found is None:
                raise ApiError(400, f"window={q['window']!r} is not one of {', '.join(WINDOWS)}")
            span_ms, default_step = found[0] * 1000, found[1]
        end = parse_time("end", q.get("end"), self.clock.now_ms())
        start = parse_time("start", q.get("start"), end - span_ms)
        if start >= end:
            raise ApiError(400, f"start {q.get('start')} must be before end {q.get('end')}")
        if end - start > MAX_SPAN_MS:
            # Reads plan per hour and per day table: an unbounded span is unbounded work.
            raise ApiError(
                400,
                f"start..end spans {(end - start) // 86_400_000} days; at most "
                f"{MAX_SPAN_MS // 86_400_000} (data is kept {self.retention_days} days)",
            )
        return start, end, default_step

    def _range(self, request: Request) -> tuple[int, int, int]:
        """(start, end, step) of a request: `window` sets all three as Heroku's Metrics
        tab does (the window ending now, at its resolution); `start`, `end` and `step`
        win where given."""
        start, end, default_step = self._span(request)
        raw_step = request.query_params.get("step", str(default_step))
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

    def _answer(self, body: dict[str, object], missing: set[int]) -> Response:
        """The answer, marked partial when shards that hold some of it did not answer."""
        if missing:
            body["partial"] = {
                "missing_shards": sorted(missing),
                "reason": "the store's shards listed did not answer: series of this app "
                "stored there are missing from this answer",
            }
            if self.counters is not None:
                for shard in missing:
                    self.counters.api_partial.labels(str(shard)).inc()
        return json_response(body)

    def _unavailable(self, exc: ShardUnavailable) -> Response:
        if self.counters is not None:
            self.counters.api_partial.labels(str(exc.shard)).inc()
        body = {"error": f"{exc}; what was asked for is stored there only, try again shortly"}
        response = json_response(body, 503)
        response.headers["Retry-After"] = "5"
        return response

    async def metrics(self, request: Request) -> Response:
        with collecting_missing() as missing:
            return await self._metrics(request, missing)

    async def _metrics(self, request: Request, missing: set[int]) -> Response:
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
            body: dict[str, object] = {
                "app": app.name,
                "metric": metric,
                "step": step,
                "start": downsample.iso(start),
                "end": downsample.iso(end),
                "series": downsample.series(metric, rows, step),
            }
            return self._answer(body, missing)
        except ApiError as exc:
            return json_response({"error": str(exc)}, exc.status)
        except ShardUnavailable as exc:
            return self._unavailable(exc)

    async def apps(self, request: Request) -> Response:
        """GET /api/v1/apps: the apps this token may read."""
        try:
            access = self._access(request)
            if access.own is not None:
                readable = [access.own]
            else:
                readable = [
                    a for a in await run_in_threadpool(self.registry.list) if access.reads(a)
                ]
            apps = [{"name": a.name, "url": f"/api/v1/apps/{a.name}"} for a in readable]
            return json_response({"apps": apps})
        except ApiError as exc:
            return json_response({"error": str(exc)}, exc.status)

    async def app(self, request: Request) -> Response:
        """GET /api/v1/apps/{name}: its process types, the metrics that have data, the
        first and last minute with data, the retention, and what it lost in [start, end)
        (default: the past day) by cause: lines dropped as late, by family, and lines
        skipped, by reason."""
        with collecting_missing() as missing:
            return await self._app(request, missing)

    async def _app(self, request: Request, missing: set[int]) -> Response:
        try:
            app = self._authorize(request)
            start, end, _ = self._span(request, DROPS_WINDOW_MS)
            dropped = await run_in_threadpool(self._dropped, app.id, start, end)
            spans = [
                s
                for s in await run_in_threadpool(self.store.series, app.id)
                if not s.family.startswith("custom." + RESERVED_MARK)
            ]
            metrics = sorted({name for s in spans for name in downsample.metrics_of(s.family)})
            body: dict[str, object] = {
                "app": app.name,
                "process_types": sorted({s.process_type for s in spans}),
                "metrics": metrics,
                "first_data": downsample.iso(min(s.first_ms for s in spans)) if spans else None,
                "last_data": downsample.iso(max(s.last_ms for s in spans)) if spans else None,
                "retention": {f"{step}s": f"{self.retention_days}d" for step in (60, 600, 3600)},
                "start": downsample.iso(start),
                "end": downsample.iso(end),
                "dropped": dropped,
            }
            return self._answer(body, missing)
        except ApiError as exc:
            return json_response({"error": str(exc)}, exc.status)
        except ShardUnavailable as exc:
            return self._unavailable(exc)

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
        with collecting_missing() as missing:
            return await self._events(request, missing)

    async def _events(self, request: Request, missing: set[int]) -> Response:
        try:
            app = self._authorize(request)
            start, end, _ = self._span(request)
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
            return self._answer({"app": app.name, "events": events}, missing)
        except ApiError as exc:
            return json_response({"error": str(exc)}, exc.status)
        except ShardUnavailable as exc:
            return self._unavailable(exc)
