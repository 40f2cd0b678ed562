"""Making a rule for an app, and showing one: what the CLI and the alerts API share."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from drainpipe.alert import rules, targets
from drainpipe.alert.rules import Rule, RuleError
from drainpipe.model import iso
from drainpipe.store.apps import AppRegistry


def masked(url: str | None) -> str | None:
    """A receiver's URL without what makes it a credential: Slack-style webhook URLs
    carry their secret in the path, others in the query or user part."""
    if url is None:
        return None
    parts = urlsplit(url)
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{targets.host_port(url)}{rest}"


def shown(rule: Rule, created_ms: int, reveal: bool = False) -> dict[str, Any]:
    """A rule as the CLI and the API show it: never its signing secret, and receiver
    URLs masked unless `reveal` (the operator's shell; API tokens may only read)."""
    return {
        "id": rule.id,
        "app": rule.app,
        "metric": rule.metric.spec,
        "threshold": rule.threshold,
        "unit": rule.metric.unit,
        "process_type": rule.process_type,
        "sensitivity": rule.sensitivity,
        "renotify": rule.renotify,
        "webhook": rule.webhook if reveal else masked(rule.webhook),
        "slack": rule.slack if reveal else masked(rule.slack),
        "email": list(rule.email),
        "created": iso(created_ms),
    }


def make(
    registry: AppRegistry,
    app: str,
    metric: str,
    threshold: float,
    process_type: str = "web",
    sensitivity: int = 5,
    renotify: int = 60,
    webhook: str | None = None,
    slack: str | None = None,
    email: tuple[str, ...] = (),
    nets: Sequence[targets.Network] = (),
) -> Rule:
    """A new rule of an existing app; RuleError says what is wrong with it (a webhook
    to an address `targets` does not allow among it)."""
    found = registry.by_name(app)
    if found is None:
        raise RuleError(f"no app named {app!r} (drainpipe apps list shows them)")
    m = rules.metric(metric)
    rules.check(m, threshold, sensitivity, renotify)
    for url, flag in ((webhook, "webhook"), (slack, "slack")):
        if url is not None and not url.startswith(("http://", "https://")):
            raise RuleError(f"{flag} {url!r} must be an http:// or https:// URL")
        if url is not None:
            try:
                parts = urlsplit(url)
                _ = parts.port  # raises on a port that is not one
            except ValueError as exc:
                raise RuleError(f"{flag} {url!r} is not a valid URL: {exc}") from None
            if not parts.hostname:
                raise RuleError(f"{flag} {url!r} has no host")
            try:
                targets.check_url(url, nets)
            except targets.Blocked as exc:
                raise RuleError(f"{flag}: {exc}") from None
    for addr in email:
        if "@" not in addr:
            raise RuleError(f"--email {addr!r} is not an email address")
    return Rule(
        uuid.uuid4().hex[:12], found.name, found.id, m, threshold, process_type, sensitivity,
        renotify, webhook, secrets.token_urlsafe(24) if webhook else None, slack, email,
    )  # fmt: skip
