"""Making a rule for an app, and showing one: what the CLI and the alerts API share."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from drainpipe.alert import rules
from drainpipe.alert.rules import Rule, RuleError
from drainpipe.model import iso
from drainpipe.store.apps import AppRegistry


def shown(rule: Rule, created_ms: int) -> dict[str, Any]:
    """A rule as the CLI and the API show it (never its secret)."""
    return {
        "id": rule.id,
        "app": rule.app,
        "metric": rule.metric.spec,
        "threshold": rule.threshold,
        "unit": rule.metric.unit,
        "process_type": rule.process_type,
        "sensitivity": rule.sensitivity,
        "renotify": rule.renotify,
        "webhook": rule.webhook,
        "slack": rule.slack,
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
) -> Rule:
    """A new rule of an existing app; RuleError says what is wrong with it."""
    found = registry.by_name(app)
    if found is None:
        raise RuleError(f"no app named {app!r} (drainpipe apps list shows them)")
    m = rules.metric(metric)
    rules.check(m, threshold, sensitivity, renotify)
    for url, flag in ((webhook, "--webhook"), (slack, "--slack")):
        if url is not None and not url.startswith(("http://", "https://")):
            raise RuleError(f"{flag} {url!r} must be an http:// or https:// URL")
    for addr in email:
        if "@" not in addr:
            raise RuleError(f"--email {addr!r} is not an email address")
    return Rule(
        uuid.uuid4().hex[:12], found.name, found.id, m, threshold, process_type, sensitivity,
        renotify, webhook, secrets.token_urlsafe(24) if webhook else None, slack, email,
    )  # fmt: skip
