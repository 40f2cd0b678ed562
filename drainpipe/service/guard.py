"""HTTP connection limits: header and body deadlines, header size and count, a connection cap.

uvicorn reads headers and bodies without a deadline and accepts connections until the
process runs out of file descriptors, so a few hundred clients that send half a request
lock out every other one. This protocol (uvicorn's httptools one, with limits) closes a
connection that is slow to send its headers or its body, refuses oversized headers, and
keeps the open connections under a cap below the descriptor limit. At the cap a new
connection evicts the oldest one that has not sent a request yet (a half-sent header or
an idle keep-alive), so clients that send whole requests promptly are still served while
slow ones are shed; only when every connection is mid-request is the newcomer refused.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from drainpipe.clock import SYSTEM
from drainpipe.config import Config
from drainpipe.telemetry.metrics import SelfMetrics

log = logging.getLogger(__name__)

# Descriptors kept free of connections: the store, the log, sockets to the primary, imports.
RESERVED_FDS = 128
LOG_EVERY_S = 10.0


def raise_fd_limit() -> int:
    """Raise this process's soft descriptor limit to its hard one; the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("http.fd_limit_not_raised", extra={"soft": soft, "error": str(exc)})
    return soft


def connection_cap(wanted: int, fd_limit: int) -> int:
    """The connections one process may hold: `wanted`, but never so many that the
    process runs out of descriptors (then it could not even accept to refuse)."""
    return max(1, min(wanted, fd_limit - RESERVED_FDS))


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the answer is in `_refusal`."""


class _Shared:
    """What the connections of one server know of each other."""

    def __init__(self, limits: Config, cap: int, metrics: SelfMetrics) -> None:
        self.limits = limits
        self.cap = cap
        self.metrics = metrics
        # Connections that have not sent a request's headers yet, oldest first.
        self.waiting: dict[GuardedProtocol, None] = {}
        self._logged: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def count(self, reason: str, client: object) -> None:
        """Count a refused or closed connection; log it, at most once per reason per 10 s."""
        self.metrics.connections_refused.labels(reason).inc()
        now = SYSTEM.monotonic()
        if now - self._logged.get(reason, -LOG_EVERY_S) < LOG_EVERY_S:
            self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
            return
        self._logged[reason] = now
        more = self._unlogged.pop(reason, 0)
        log.warning(
            "http.connection_refused",
            extra={"reason": reason, "client": str(client), "more_since_last_log": more},
        )


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines, header limits and a connection cap."""

    shared: ClassVar[_Shared]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._response_timer: asyncio.TimerHandle | None = None
        self._reading_headers = True
        self._header_bytes = 0  # bytes received while the headers were incomplete
        self._header_sum = 0  # bytes of the headers parsed so far
        self._header_count = 0
        self._refusal: tuple[int, str, str] | None = None

    # Connection life

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        s = self.shared
        if len(self.connections) >= s.cap:
            oldest = next(iter(s.waiting), None)
            if oldest is None:
                super().connection_made(transport)
                self._refuse(503, "connection_cap", "too many connections; retry shortly")
                return
            s.count("evicted", oldest.client)
            oldest._close(abort=True)
        super().connection_made(transport)
        s.waiting[self] = None
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._close_timers()
        self.shared.waiting.pop(self, None)
        super().connection_lost(exc)

    def _close(self, abort: bool = False) -> None:
        """Close now; `abort` drops what is still unsent (to a client that stopped
        reading, which a plain close would wait on for ever)."""
        self._close_timers()
        self.shared.waiting.pop(self, None)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            self.flow.resume_writing()  # a send() waiting to drain returns
        if abort:
            self.transport.abort()
        elif not self.transport.is_closing():
            self.transport.close()

    def _close_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer, self._response_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = self._response_timer = None

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.shared.limits.header_timeout_s, self._headers_too_slow
            )

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        limit = self.shared.limits.header_timeout_s
        self._refuse(408, "header_timeout", f"request headers not complete within {limit:g} s")

    def _body_too_slow(self) -> None:
        self._body_timer = None
        limit = self.shared.limits.body_timeout_s
        self._refuse(408, "body_timeout", f"request body not complete within {limit:g} s")

    def _arm_response_timer(self) -> None:
        # A client that stops reading its answer would hold the connection for ever.
        self._response_timer = self.loop.call_later(
            self.shared.limits.body_timeout_s, self._response_too_slow
        )

    def _response_too_slow(self) -> None:
        self._response_timer = None
        self._refuse(0, "response_timeout", "")

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        """Answer `status` (unless an answer is under way already) and close."""
        self.shared.count(reason, self.client)
        started = self.cycle is not None and self.cycle.response_started
        if status and not self.transport.is_closing() and not started:
            body = (detail + "\n").encode()
            head = [
                STATUS_LINE[status],
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n",
            ]
            if status == 503:
                head.append(b"retry-after: 1\r\n")
            self.transport.write(b"".join([*head, b"\r\n", body]))
        self._close(abort=not status)

    # Reading

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._reading_headers:
            self._arm_header_timer()
            self._header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            self._refuse(*(self._refusal or (400, "bad_request", "invalid HTTP request")))
            return
        except httptools.HttpParserUpgrade:
            self._refuse(400, "upgrade", "protocol upgrades are not served here")
            return
        except httptools.HttpParserError:
            self._refuse(400, "bad_request", "invalid HTTP request")
            return
        limit = self.shared.limits.max_header_bytes
        if self._reading_headers and self._header_bytes > limit:
            self._refuse(431, "headers_too_large", f"request headers exceed {limit} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_sum = self._header_count = 0
        self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._header_sum += len(url)
        self._check_headers()

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._header_sum += len(name) + len(value) + 4
        self._header_count += 1
        self._check_headers()

    def _check_headers(self) -> None:
        limits = self.shared.limits
        if self._header_count > limits.max_headers:
            self._refusal = (431, "too_many_headers", f"more than {limits.max_headers} headers")
        elif self._header_sum > limits.max_header_bytes:
            limit = limits.max_header_bytes
            self._refusal = (431, "headers_too_large", f"request headers exceed {limit} bytes")
        else:
            return
        raise _Refused

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._header_bytes = 0
        self.shared.waiting.pop(self, None)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._body_timer = self.loop.call_later(
            self.shared.limits.body_timeout_s, self._body_too_slow
        )
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if self._response_timer is None:
            self._arm_response_timer()
        self._reading_headers = True  # of the next request on this connection
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._response_timer is not None:
            self._response_timer.cancel()
            self._response_timer = None
        idle = not self.pipeline  # else super() starts the next pipelined request
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if idle:
            # An idle keep-alive connection is the first to go at the cap.
            self.shared.waiting[self] = None
        else:
            self._arm_response_timer()


def protocol(limits: Config, metrics: SelfMetrics) -> Callable[..., GuardedProtocol]:
    """The protocol class for uvicorn's `http=` setting, with the limits of `limits`
    (its `header_timeout_s`, `body_timeout_s`, `max_header_bytes`, `max_headers` and
    `max_connections`); its connections share one cap."""
    cap = connection_cap(limits.max_connections, raise_fd_limit())
    log.info(
        "http.limits",
        extra={
            "max_connections": cap,
            "header_timeout_s": limits.header_timeout_s,
            "body_timeout_s": limits.body_timeout_s,
            "max_header_bytes": limits.max_header_bytes,
            "max_headers": limits.max_headers,
        },
    )
    return type("Guarded", (GuardedProtocol,), {"shared": _Shared(limits, cap, metrics)})
