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
import zlib
from collections import Counter
from typing import Final

from starlette.types import Receive, Scope, Send

from drainpipe.bus import BusUnavailable, OutRecord
from drainpipe.clock import SYSTEM, Clock
from drainpipe.config import Config
from drainpipe.ingest import records
from drainpipe.ingest.acceptor import Acceptor
from drainpipe.ingest.framing import FramingError, split_frames
from drainpipe.ingest.limits import CUSTOM_NAME, PROCESS_TYPE, SeriesLimits
from drainpipe.store.apps import App, AppRegistry
from drainpipe.telemetry.metrics import SelfMetrics

log = logging.getLogger(__name__)

# ASGI, spelled out: the drain endpoint is called by the server directly (see `http.app`),
# without a framework's request and response objects: it is the hot path.

LIMIT_LOG_EVERY_S = 60.0  # one log line per app and kind while a limit bites

_NO_CONTENT: Final = {"type": "http.response.start", "status": 204, "headers": []}
_EMPTY: Final = {"type": "http.response.body", "body": b""}


def _drain_secret(header: bytes | None) -> str | None:
    """The drain secret of `Authorization: Basic <user:secret>` (Logplex, the drain URL's
    password) or `Authorization: Bearer <secret>` (log-shuttle's -bearer-token)."""
    if not header:
        return None
    if header[:7].lower() == b"bearer ":
        token = header[7:].strip()
        return token.decode("latin-1") if token else None
    if header[:6].lower() != b"basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep else None


class TooLarge(Exception):
    """A body over the limit, found while it was being read or decoded."""


class BadGzip(Exception):
    """A body sent as gzip that does not decode."""


_GZIP: Final = frozenset({b"gzip", b"x-gzip"})
_ENCODINGS: Final = _GZIP | {b"identity", b""}


def gunzip(body: bytes, limit: int) -> bytes:
    """The decoded body, refused as TooLarge once it passes `limit` bytes: the limit is
    on what is parsed, so a small body that inflates without end is stopped early."""
    d = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
    try:
        out = d.decompress(body, limit + 1)
        if len(out) > limit:
            raise TooLarge(f"gzip body decodes to more than {limit} bytes")
        if not d.eof:
            raise BadGzip("it ends before the gzip stream does")
        if d.unused_data:
            raise BadGzip("bytes follow the gzip stream (one gzip member is accepted)")
    except zlib.error as exc:
        raise BadGzip(str(exc)) from None
    return out


class Disconnected(Exception):
    """The client left before its whole body came: nothing of it may be stored, since
    Logplex sends the whole frame again and a stored part would make it a duplicate."""


class Ingress:
    def __init__(
        self,
        registry: AppRegistry,
        acceptor: Acceptor,
        metrics: SelfMetrics,
        config: Config,
        clock: Clock = SYSTEM,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.acceptor = acceptor
        self.metrics = metrics
        self.config = config
        self.limits = SeriesLimits(config.max_process_types, config.max_custom_names)
        self._limit_logged: dict[tuple[str, str], float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /logs as an ASGI app."""
        headers: dict[bytes, bytes] = dict(scope["headers"])  # names come lower-cased
        try:
            status, reason, detail = await self._handle(headers, receive)
        except Disconnected:
            self.metrics.rejected.labels("disconnected").inc()
            return  # no one to answer
        self.metrics.requests.labels(str(status)).inc()
        if reason:
            self.metrics.rejected.labels(reason).inc()
        if status == 204:
            await send(_NO_CONTENT)
            await send(_EMPTY)
            return
        body = (detail + "\n").encode()
        extra: list[tuple[bytes, bytes]] = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:
            extra.append((b"www-authenticate", b'Basic realm="drainpipe drain"'))
        if status == 503:
            extra.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": body})

    def _within_limits(
        self, app: App, parsed: records.Parsed, now_ms: int
    ) -> tuple[list[OutRecord], Counter[str]]:
        """The records of process types and custom names the app may use (see `limits`),
        and how many measurements of the others were dropped, by kind (logged too)."""
        admit, kept, limited = self.limits.admit, [], Counter[str]()
        for record, (pt, name, rows) in zip(parsed.records, parsed.series, strict=True):
            if not admit(app.id, PROCESS_TYPE, pt, now_ms):
                refused, kind = pt, PROCESS_TYPE
            elif name and not admit(app.id, CUSTOM_NAME, f"{pt}/{name}", now_ms):
                refused, kind = name, CUSTOM_NAME
            else:
                kept.append(record)
                continue
            limited[kind] += rows
            last = self._limit_logged.get((app.id, kind), float("-inf"))
            if self.clock.monotonic() - last >= LIMIT_LOG_EVERY_S:
                self._limit_logged[app.id, kind] = self.clock.monotonic()
                log.warning(
                    "ingress.series_limit",
                    extra={
                        "app": app.name,
                        "kind": kind,
                        "limit": self.limits.limit[kind],
                        "refused": refused[:100],
                    },
                )
        return kept, limited

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.config.max_body_bytes:
                raise TooLarge(
                    f"body exceeds {self.config.max_body_bytes} bytes ({size} read so far)"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _handle(self, headers: dict[bytes, bytes], receive: Receive) -> tuple[int, str, str]:
        """(status, reason counted when rejected, detail for the answer) of one request."""
        password = _drain_secret(headers.get(b"authorization"))
        app: App | None = None
        if password is not None:
            app = self.registry.by_drain_secret(password)
        if app is None:
            return (
                401,
                "unauthorized",
                "drain credentials missing or unknown: use the drain_url from "
                "`drainpipe apps create` (the password is the app's drain secret), "
                "or 'Authorization: Bearer <drain secret>'",
            )
        ctype = headers.get(b"content-type", b"").decode("latin-1")
        if ctype.split(";")[0].strip().lower() != "application/logplex-1":
            return 415, "content_type", f"Content-Type {ctype!r} is not application/logplex-1"
        raw_count = headers.get(b"logplex-msg-count")
        msg_count = None
        if raw_count is not None:
            # Digits only: int() would also take "1_0", " 10" and "+10".
            if not raw_count.isdigit():  # bytes: ASCII digits only
                shown = raw_count.decode("latin-1")
                return 400, "msg_count", f"Logplex-Msg-Count {shown!r} is not a number"
            msg_count = int(raw_count)
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.config.max_body_bytes:
            return (
                413,
                "too_large",
                f"body of {int(length)} bytes exceeds {self.config.max_body_bytes}",
            )
        encoding = headers.get(b"content-encoding", b"identity").strip().lower()
        if encoding not in _ENCODINGS:
            shown = encoding.decode("latin-1")
            return (
                415,
                "content_encoding",
                (f"Content-Encoding {shown!r} is not accepted: send gzip or no encoding"),
            )
        try:
            body = await self._body(receive)
            if encoding in _GZIP:
                body = gunzip(body, self.config.max_body_bytes)
        except TooLarge as exc:
            return 413, "too_large", str(exc)
        except BadGzip as exc:
            return 400, "gzip", f"Content-Encoding gzip, but the body is not gzip: {exc}"
        try:
            frames = split_frames(body)
        except FramingError as exc:
            return 400, "framing", f"bad octet-counted framing: {exc}"
        if msg_count is not None and msg_count != len(frames):
            return (
                400,
                "msg_count",
                f"Logplex-Msg-Count says {msg_count} messages "
                f"but the body has {len(frames)} frames",
            )
        frame_id = headers.get(b"logplex-frame-id", b"")[:128].decode("latin-1") or None
        c = self.config
        now_ms = self.clock.now_ms()
        parsed = records.build(
            app.id, frames, now_ms, c.max_future_s * 1000, c.max_age_ms, c.lateness_s * 1000,
            frame_id or "",
        )  # fmt: skip
        accepted, limited = self._within_limits(app, parsed, now_ms)
        lost = parsed.skipped + Counter({f"{kind}_limit": n for kind, n in limited.items()})
        accepted += records.skip_records(app.id, now_ms, lost, frame_id or "")
        try:
            fresh = await self.acceptor.accept(app.id, frame_id, accepted)
        except BusUnavailable as exc:
            log.warning("ingress.bus_unavailable", extra={"app": app.name, "error": str(exc)})
            return 503, "bus_unavailable", f"not stored, retry: {exc}"
        if not fresh:
            self.metrics.duplicates.inc()
            return 204, "", ""
        for kind, n in parsed.lines.items():
            self.metrics.lines.labels(kind).inc(n)
        for reason, n in parsed.skipped.items():
            self.metrics.skipped.labels(reason).inc(n)
        for kind, n in limited.items():
            self.metrics.series_limited.labels(kind).inc(n)
        if parsed.upstream_dropped:
            self.metrics.upstream_dropped.inc(parsed.upstream_dropped)
        return 204, "", ""
