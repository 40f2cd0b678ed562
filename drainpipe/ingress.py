"""Ingress: the Logplex HTTPS drain endpoint; acknowledges only what the bus holds durably.

Answers, in Logplex's terms (4xx other than 429 drops the frame for good, 5xx retries):
204 accepted and durable; 401 unknown drain credentials; 400 bad framing or a
Logplex-Msg-Count mismatch; 413 body too large; 415 not application/logplex-1;
503 the bus could not take the batch (Logplex retries).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from drainpipe import batch
from drainpipe.acceptor import Acceptor
from drainpipe.apps import App, AppRegistry
from drainpipe.bus import BusUnavailable
from drainpipe.config import Config
from drainpipe.frames import FramingError, split_frames
from drainpipe.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)


def _basic_password(header: str | None) -> str | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep else None


class Ingress:
    def __init__(
        self, registry: AppRegistry, acceptor: Acceptor, metrics: SelfMetrics, config: Config
    ) -> None:
        self.registry = registry
        self.acceptor = acceptor
        self.metrics = metrics
        self.config = config

    def _answer(self, status: int, reason: str = "", detail: str = "") -> Response:
        self.metrics.requests.labels(str(status)).inc()
        if reason:
            self.metrics.rejected.labels(reason).inc()
        if status == 204:
            return Response(status_code=204)
        headers = {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="drainpipe drain"'
        if status == 503:
            headers["Retry-After"] = "1"
        return PlainTextResponse(detail + "\n", status_code=status, headers=headers)

    async def handle(self, request: Request) -> Response:
        password = _basic_password(request.headers.get("authorization"))
        app: App | None = None
        if password is not None:
            app = self.registry.by_drain_secret(password)
        if app is None:
            return self._answer(
                401,
                "unauthorized",
                "drain credentials missing or unknown: use the drain_url from "
                "`drainpipe apps create` (the password is the app's drain secret)",
            )
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/logplex-1":
            return self._answer(
                415, "content_type", f"Content-Type {ctype!r} is not application/logplex-1"
            )
        raw_count = request.headers.get("logplex-msg-count")
        try:
            msg_count = int(raw_count) if raw_count is not None else None
        except ValueError:
            return self._answer(
                400, "msg_count", f"Logplex-Msg-Count {raw_count!r} is not a number"
            )
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.config.max_body_bytes:
            return self._answer(
                413, "too_large", f"body of {length} bytes exceeds {self.config.max_body_bytes}"
            )
        body = await request.body()
        if len(body) > self.config.max_body_bytes:
            return self._answer(
                413, "too_large", f"body of {len(body)} bytes exceeds {self.config.max_body_bytes}"
            )
        try:
            frames = split_frames(body)
        except FramingError as exc:
            return self._answer(400, "framing", f"bad octet-counted framing: {exc}")
        if msg_count is not None and msg_count != len(frames):
            return self._answer(
                400,
                "msg_count",
                f"Logplex-Msg-Count says {msg_count} messages "
                f"but the body has {len(frames)} frames",
            )
        frame_id = request.headers.get("logplex-frame-id", "")[:128] or None
        parsed = batch.build(
            app.id, frames, int(time.time() * 1000), self.config.max_future_s * 1000
        )
        try:
            fresh = await self.acceptor.accept(app.id, frame_id, parsed.records)
        except BusUnavailable as exc:
            log.warning("ingress.bus_unavailable", extra={"app": app.name, "error": str(exc)})
            return self._answer(503, "bus_unavailable", f"not stored, retry: {exc}")
        if not fresh:
            self.metrics.duplicates.inc()
            return self._answer(204)
        for kind, n in parsed.lines.items():
            self.metrics.lines.labels(kind).inc(n)
        for reason, n in parsed.skipped.items():
            self.metrics.skipped.labels(reason).inc(n)
        if parsed.upstream_dropped:
            self.metrics.upstream_dropped.inc(parsed.upstream_dropped)
        return self._answer(204)
