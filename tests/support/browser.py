"""Browser tests' helpers: the site under test, a page that records JavaScript errors,
and an alert history seeded as the alerts stage writes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drainpipe.alert import manage
from drainpipe.alert.evaluate import Notice, State
from drainpipe.alert.state import AlertState
from drainpipe.store.apps import sqlite_registry
from tests.support import drains

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "screenshots"
MIN = 60_000


class Site:
    def __init__(self, server: drains.Server, apps: dict[str, dict[str, str]], team: str) -> None:
        self.server = server
        self.apps = apps
        self.team = team
        self.url = server.url

    def api(self, path: str, token: str | None = None) -> Any:
        code, body = self.server.get(path, token or self.apps["shop"]["api_token"])
        assert code == 200, (path, body)
        return body


def seed_alert_history(data: Path, minute_ms: int) -> None:
    """A latency alert that fired 30 minutes ago and resolved 20 minutes ago, written as
    the alerts stage writes what it judged."""
    registry = sqlite_registry(data / "apps.sqlite")
    state = AlertState(data / "alerts.sqlite")
    try:
        rule = manage.make(registry, "shop", "latency_p95", 2000, sensitivity=1)
        state.add(rule, minute_ms - 40 * MIN)
        for ago, kind in ((30, "firing"), (20, "resolved")):
            notice = Notice(kind, minute_ms - ago * MIN, 2500.0, 2000.0)
            state.judged(rule, State(), [notice], [], minute_ms, 0)
    finally:
        state.close()
        registry.close()


class Page:
    """A fresh browser context's page that records every JavaScript error."""

    def __init__(self, browser: Any, site: Site) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.site = site
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on(
            "console",
            lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None,
        )

    def goto(self, path: str) -> None:
        self.page.goto(self.site.url + path)
        self.ready()

    def ready(self, loads: int | None = None) -> None:
        if loads is None:
            self.page.wait_for_function(
                "() => ['ready', 'sign-in', 'error'].includes(document.body.dataset.state)"
            )
        else:
            self.page.wait_for_function(f"() => window.drainpipe.loads >= {loads}")
        assert self.page.evaluate("document.body.dataset.state") != "error", self.text("#main")

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).inner_text())

    def charts(self) -> dict[str, dict[str, Any]]:
        """What each chart on screen holds: labels, x values and raw series values."""
        return dict(
            self.page.evaluate(
                """() => Object.fromEntries(window.drainpipe.charts.map((c) => [c.spec.id, {
                    labels: c.spec.series.map((s) => s.label),
                    shown: c.u.series.slice(1).map((s) => s.show),
                    xs: c.u.data[0],
                    values: c.spec.series.map((s) => s.raw || s.values),
                    events: c.u.over.querySelectorAll('.marker').length,
                    lines: c.u.eventsDrawn,
                    bands: c.u.alertBands,
                }]))"""
            )
        )

    def shot(self, name: str) -> None:
        SHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], self.errors
