"""Notices out: the webhook body and its signature, a Slack-compatible body, an email,
and the sending of each with retries (the I/O edge of alerts).

A webhook body is JSON with `app, process_type, rule_id, metric, state, value,
threshold, minute, dashboard_url` and the events of the rule's window; it is signed
`X-Drainpipe-Signature: sha256=<hex HMAC-SHA256 of the body with the rule's secret>` and
carries `X-Drainpipe-Delivery`, the same id on every try, so a receiver can drop a
repeat. A receiver's 4xx is final (logged, not retried), but for 408 and 429; a 5xx, a
timeout or a refused connection is retried with backoff. Redirects are not followed (a
redirect could lead where `targets` would not let a notice go), and each connection
goes to the address `targets` checked.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Final
from urllib.parse import quote, urlsplit

from drainpipe.alert import targets
from drainpipe.alert.rules import Rule
from drainpipe.config import Config
from drainpipe.model import iso as iso

log = logging.getLogger(__name__)

TIMEOUT_S: Final = 10.0
BACKOFF_S: Final = (5, 15, 60, 300, 900)  # then given up, about 20 minutes after the first try


@dataclass(frozen=True, slots=True)
class Smtp:
    """Where email goes: `host:port`, STARTTLS, and optional credentials."""

    host: str
    port: int = 587
    starttls: bool = True
    user: str | None = None
    password: str | None = None
    sender: str = "drainpipe@localhost"


def smtp_of(config: Config) -> Smtp | None:
    """The mail server of a config (DRAINPIPE_SMTP_*), or None."""
    if not config.smtp_host:
        return None
    return Smtp(
        config.smtp_host,
        config.smtp_port,
        config.smtp_starttls,
        config.smtp_user,
        config.smtp_password,
        config.smtp_from,
    )


class Final4xx(Exception):
    """The receiver refused the notice for good (a 4xx): it is not sent again."""


class Unanswered(Exception):
    """The receiver answered, but not with a 2xx: the notice is tried again."""


def reason(exc: BaseException) -> str:
    """What went wrong, as the history shows it: the kind of failure without the
    details of the network behind it (those are in the log)."""
    if isinstance(exc, (Final4xx, Unanswered, targets.Blocked)):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, smtplib.SMTPException):
        return f"SMTP server refused it ({type(exc).__name__})"
    if isinstance(exc, OSError):
        return "could not connect"
    return type(exc).__name__


def body(
    rule: Rule,
    state: str,
    minute_ms: int,
    value: float | None,
    events: list[dict[str, Any]],
    base_url: str,
    delivery: str,
) -> dict[str, Any]:
    """The webhook body of one notice."""
    dashboard = (
        f"{base_url.rstrip('/')}/apps/{quote(rule.app)}?window=2h"
        f"&process_type={quote(rule.process_type)}"
    )
    return {
        "app": rule.app,
        "process_type": rule.process_type,
        "rule_id": rule.id,
        "metric": rule.metric.spec,
        "state": state,
        "value": value,
        "threshold": rule.threshold,
        "unit": rule.metric.unit,
        "minute": iso(minute_ms),
        "dashboard_url": dashboard,
        "events": events,
        "delivery": delivery,
        "text": text(rule, state, minute_ms, value, events),
    }


def text(
    rule: Rule, state: str, minute_ms: int, value: float | None, events: list[dict[str, Any]]
) -> str:
    """One line a person reads: what, where, how much, and what happened around it."""
    shown = "no data" if value is None else f"{value:.4g}{(' ' + rule.metric.unit).rstrip()}"
    op = "<" if rule.metric.below else ">="
    head = {
        "firing": "FIRING",
        "reminder": "STILL FIRING",
        "resolved": "RESOLVED",
        "no_data": "NO DATA",
        "test": "TEST",
    }.get(state, state.upper())
    line = (
        f"[{head}] {rule.app} {rule.process_type}: {rule.metric.spec} {shown} "
        f"(rule: {op} {rule.threshold:g} for {rule.sensitivity} min) at {iso(minute_ms)}"
    )
    if events:
        line += "; events: " + "; ".join(f"{e['kind']}: {e['text']}" for e in events[-3:])
    return line


def signature(secret: str, payload: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the URL's host name for SNI and certificates."""

    def __init__(self, address: str, host: str, port: int) -> None:
        super().__init__(host, port, timeout=TIMEOUT_S, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def _post(
    url: str, payload: bytes, headers: dict[str, str], nets: Sequence[targets.Network]
) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    address = targets.address_for(host, port, nets)
    conn: http.client.HTTPConnection = (
        _PinnedHTTPS(address, host, port)
        if secure
        else http.client.HTTPConnection(address, port, timeout=TIMEOUT_S)
    )
    where = targets.host_port(url)
    shown = f"{parts.scheme}://{where}"
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, payload, {**headers, "Host": where})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    status = response.status
    if 200 <= status < 300:
        return
    if 400 <= status < 500 and status not in (408, 429):  # those two say "try later"
        raise Final4xx(f"{shown} answered {status}")
    if 300 <= status < 400:
        raise Final4xx(f"{shown} answered {status}: redirects are not followed; use the final URL")
    raise Unanswered(f"{shown} answered {status}")


def webhook(rule: Rule, notice: dict[str, Any], nets: Sequence[targets.Network] = ()) -> None:
    payload = json.dumps(notice, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "drainpipe-alerts",
        "X-Drainpipe-Delivery": str(notice["delivery"]),
    }
    if rule.webhook_secret:
        headers["X-Drainpipe-Signature"] = signature(rule.webhook_secret, payload)
    assert rule.webhook is not None
    _post(rule.webhook, payload, headers, nets)


def slack(rule: Rule, notice: dict[str, Any], nets: Sequence[targets.Network] = ()) -> None:
    """An incoming-webhook body (`text`), which Slack and its look-alikes take."""
    # Slack reads <...> as links and mentions: text from the app's logs must not be one.
    shown = str(notice["text"]).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    payload = json.dumps({"text": f"{shown} <{notice['dashboard_url']}|dashboard>"})
    assert rule.slack is not None
    _post(rule.slack, payload.encode(), {"Content-Type": "application/json"}, nets)


def email(rule: Rule, notice: dict[str, Any], smtp: Smtp | None) -> None:
    if smtp is None:
        raise Final4xx("no SMTP server configured (DRAINPIPE_SMTP_HOST)")
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(rule.email)
    msg["Subject"] = str(notice["text"])[:180]
    msg.set_content(f"{notice['text']}\n\n{notice['dashboard_url']}\n")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT_S) as server:
        if smtp.starttls:
            server.starttls()
        if smtp.user:
            server.login(smtp.user, smtp.password or "")
        server.send_message(msg)


def send(
    channel: str,
    rule: Rule,
    notice: dict[str, Any],
    smtp: Smtp | None,
    nets: Sequence[targets.Network] = (),
) -> None:
    """Send one notice on one channel of the rule; `nets` are the private networks the
    operator allows webhooks to go to (see `targets`)."""
    if channel == "webhook":
        webhook(rule, notice, nets)
    elif channel == "slack":
        slack(rule, notice, nets)
    elif channel == "email":
        email(rule, notice, smtp)
