"""Notices out: the webhook body and its signature, a Slack-compatible body, an email,
and the sending of each with retries (the I/O edge of alerts).

A webhook body is JSON with `app, process_type, rule_id, metric, state, value,
threshold, minute, dashboard_url` and the events of the rule's window; it is signed
`X-Drainpipe-Signature: sha256=<hex HMAC-SHA256 of the body with the rule's secret>` and
carries `X-Drainpipe-Delivery`, the same id on every try, so a receiver can drop a
repeat. A receiver's 4xx is final (logged, not retried), but for 408 and 429; a 5xx, a
timeout or a refused connection is retried with backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Final
from urllib.parse import quote

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


def _post(url: str, payload: bytes, headers: dict[str, str]) -> None:
    req = urllib.request.Request(url, data=payload, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        exc.close()  # its connection
        if 400 <= exc.code < 500 and exc.code not in (408, 429):  # those say "try later"
            raise Final4xx(f"{url} answered {exc.code}") from None
        raise


def webhook(rule: Rule, notice: dict[str, Any]) -> None:
    payload = json.dumps(notice, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "drainpipe-alerts",
        "X-Drainpipe-Delivery": str(notice["delivery"]),
    }
    if rule.webhook_secret:
        headers["X-Drainpipe-Signature"] = signature(rule.webhook_secret, payload)
    assert rule.webhook is not None
    _post(rule.webhook, payload, headers)


def slack(rule: Rule, notice: dict[str, Any]) -> None:
    """An incoming-webhook body (`text`), which Slack and its look-alikes take."""
    # Slack reads <...> as links and mentions: text from the app's logs must not be one.
    shown = str(notice["text"]).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    payload = json.dumps({"text": f"{shown} <{notice['dashboard_url']}|dashboard>"})
    assert rule.slack is not None
    _post(rule.slack, payload.encode(), {"Content-Type": "application/json"})


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


def send(channel: str, rule: Rule, notice: dict[str, Any], smtp: Smtp | None) -> None:
    """Send one notice on one channel of the rule."""
    if channel == "webhook":
        webhook(rule, notice)
    elif channel == "slack":
        slack(rule, notice)
    elif channel == "email":
        email(rule, notice, smtp)
