"""Turn the text of one `heroku router` line into a RouterRequest.

The router's usual field order is matched by one precompiled pattern that accepts only
plain values (digits with an optional `ms`, an H code), which it converts directly;
lines in any other shape (fields missing, reordered, decimal or odd values) go through
the general logfmt reader and the lenient conversions below. Both paths read a line
alike; tests/ingest/parse/test_router.py checks that on generated lines.
"""

from __future__ import annotations

import re
from typing import Final

from drainpipe.ingest.parse.dyno import process_type
from drainpipe.ingest.parse.logfmt import parse_logfmt
from drainpipe.model import RouterRequest, Skipped

SKIP_ROUTER: Final = Skipped("router_line")

_QUOTED: Final = r'(?:"[^"\\]*(?:\\.[^"\\]*)*"|[^ "]*)'  # quoted as logfmt reads it, or bare
# The usual shape with plain values only: digits with an optional `ms`, a valid H code.
# Anything else (decimals, negative numbers, reordered fields) takes the logfmt path.
_STANDARD: Final = re.compile(
    r"at=(info|warning|error)"
    rf"(?: code=(H[0-9]{{1,4}}) desc={_QUOTED})?"
    rf" method=[^ ]* path={_QUOTED} host=[^ ]* request_id=[^ ]* fwd={_QUOTED}"
    r' dyno=([^ "]*) connect=([0-9]*)(?:ms)? service=([0-9]*)(?:ms)?'
    r" status=([0-9]{0,3}) bytes=([0-9]*)"
    r"(?= |$)",  # then protocol=, tls=, tls_version=, ... which a request does not need
)
_DECIMAL: Final = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_H_CODE: Final = re.compile(r"H[0-9]{1,4}")  # 4 digits at most: H codes fit an int16 column
_LEVELS: Final = {
    "": "info",
    "info": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "err": "error",
}


def _duration_ms(raw: str | None) -> float | None:
    """`22ms`, `22` or `22.5ms` as ms; None when empty, negative or not a number."""
    if not raw:
        return None
    if raw.endswith("ms"):
        raw = raw[:-2]
    if raw.isascii() and (raw.isdigit() or _DECIMAL.fullmatch(raw)):
        return float(raw)
    return None


def _status(raw: str | None) -> int:
    """An HTTP status of 1 to 3 digits; 0 when absent, empty or malformed."""
    if raw and len(raw) <= 3 and raw.isascii() and raw.isdigit():
        return int(raw)
    return 0


def _bytes(raw: str | None) -> int | None:
    """A response size in bytes; None when absent, empty or malformed."""
    if raw and raw.isascii() and raw.isdigit():
        return int(raw)
    return None


def _request(
    ts_ms: int,
    at: str,
    code: str | None,
    dyno: str | None,
    connect: str | None,
    service: str | None,
    status: str | None,
    size: str | None,
) -> RouterRequest | Skipped:
    kind = process_type(dyno) if dyno else "web"  # no dyno: the router only routes to web
    if kind is None:
        return SKIP_ROUTER
    h_code = code if code and _H_CODE.fullmatch(code) else None
    service_ms = _duration_ms(service)
    status_code = _status(status)
    if status_code == 0 and service_ms is None and h_code is None:
        return SKIP_ROUTER
    level = _LEVELS.get(at.lower())
    if level is None:
        level = "error" if h_code else "info"
    return RouterRequest(
        ts_ms=ts_ms,
        process_type=kind,
        status=status_code,
        service_ms=service_ms,
        connect_ms=_duration_ms(connect),
        bytes=_bytes(size),
        code=h_code,
        level=level,
    )


# at=info method=GET path="/cart" host=shop.example.com request_id=8601b555-6a54-4f5c-9c7b-9d8c2bc4b9d0 fwd="1.2.3.4" dyno=web.1 connect=1ms service=22ms status=304 bytes=656 protocol=https  # noqa: E501
# at=error code=H12 desc="Request timeout" method=GET path="/" host=myapp.herokuapp.com request_id=0f3e0a0c-8a51-4a8a-a8c6-0b4a5c9a1d2e fwd="1.2.3.4" dyno=web.1 connect=0ms service=30000ms status=503 bytes=0 protocol=https  # noqa: E501
def parse_router(ts_ms: int, text: str) -> RouterRequest | Skipped:
    """The request a router line describes, or Skipped("router_line")."""
    standard = _STANDARD.match(text)
    if standard is not None:
        level, code, dyno, connect, service, status, size = standard.groups()
        kind = process_type(dyno) if dyno else "web"
        service_ms = float(service) if service else None
        status_code = int(status) if status else 0
        if kind is None or (status_code == 0 and service_ms is None and code is None):
            return SKIP_ROUTER
        return RouterRequest(
            ts_ms,
            kind,
            status_code,
            service_ms,
            float(connect) if connect else None,
            int(size) if size else None,
            code,
            level,
        )
    fields = parse_logfmt(text)
    return _request(
        ts_ms,
        fields.get("at", ""),
        fields.get("code"),
        fields.get("dyno"),
        fields.get("connect"),
        fields.get("service"),
        fields.get("status"),
        fields.get("bytes"),
    )
