"""The dashboard in headless Chromium against `drainpipe up` fed with simulated traffic.

Two hours of `drainpipe simulate` traffic (web, worker and clock dynos, with platform
events) are replayed into a data directory, then a deploy and an app's own metrics are
POSTed to the running server. Each test drives Debian's chromium through Playwright,
compares what every chart holds with the API's answer, and fails on any JavaScript
error the page logs. Screenshots go to `screenshots/` (ignored by git).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.support import drains
from tests.support.browser import CHROMIUM, MIN, SHOTS, Page, Site, seed_alert_history

playwright_api = pytest.importorskip("playwright.sync_api")

DEPLOY = "Deploy 2c3a0b24 by ops@example.com"
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian chromium is not installed (.ci/run installs it)",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("dashboard")
    data = tmp / "data"
    apps = {name: drains.create_app(data, name) for name in ("shop", "blog")}
    team = drains.drainpipe("tokens", "create", "--all", "--data-dir", str(data))
    assert team.returncode == 0, team.stderr
    sim = [sys.executable, "-m", "drainpipe.cli"]
    out = subprocess.run(
        [*sim, "simulate", "--out", str(tmp / "sim"), "--duration", "7200", "--rate", "8",
         "--process-types", "web,worker,clock", "--event-interval", "600", "--seed", "5"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    files = [str(p) for p in sorted((tmp / "sim").glob("*.drain"))]
    out = subprocess.run(
        [*sim, "replay", "--app", "shop", "--data-dir", str(data), *files],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    seed_alert_history(data, int(time.time() * 1000) // MIN * MIN)
    server = drains.start(data, None, "--flush-interval", "0.2", "--workers", "0")
    now = int(time.time() * 1000)
    lines = [drains.event(now - 7 * MIN, "heroku", "api", DEPLOY)]
    for i in range(120):
        t = now - 9 * MIN + i * 2000
        lines.append(drains.event(t, "app", "web.1", f"measure#db.query={5 + i % 17}ms"))
        lines.append(drains.event(t, "app", "web.1", "count#orders=1"))
    assert server.post(apps["shop"]["drain_secret"], drains.body(lines), len(lines)) == 204
    # `drainpipe up` says where the dashboard is.
    assert f"drainpipe: dashboard at {server.url}/ " in server.log_path.read_text()
    s = Site(server, apps, json.loads(team.stdout)["token"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        catalogue = s.api("/api/v1/apps/shop")
        events = s.api("/api/v1/apps/shop/events?window=2h")["events"]
        if "custom.db.query" in catalogue["metrics"] and any(e["text"] == DEPLOY for e in events):
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"posted lines not visible: {catalogue}")
    yield s
    assert drains.stop(server) == 0, server.log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Page]:
    p = Page(browser, site)
    yield p
    p.close()


def signed_in(page: Page, path: str, token: str | None = None) -> None:
    page.goto(f"{path}#token={token or page.site.apps['shop']['api_token']}")


def test_sign_in_form_keeps_the_token_and_lists_the_apps(page: Page) -> None:
    page.goto("/")
    assert page.page.locator("#sign-in").is_visible()
    page.page.fill("#token", "not-a-token")
    page.page.click("#sign-in button[type=submit]")
    page.ready()
    page.page.wait_for_selector("#sign-in-error:not([hidden])")
    assert "unknown API token" in page.text("#sign-in-error")
    # The browser logs the 401 it was answered; nothing else may have been logged.
    assert all("401" in e for e in page.errors), page.errors
    page.errors.clear()
    page.page.fill("#token", page.site.team)
    page.page.click("#sign-in button[type=submit]")
    page.page.wait_for_selector("table.apps")
    rows = page.text("table.apps tbody")
    assert "shop" in rows and "blog" in rows and "no data yet" in rows
    page.shot("apps")
    page.page.reload()  # the token was kept in this browser
    page.page.wait_for_selector("table.apps")
    page.page.click("text=shop")
    page.ready()
    assert page.page.url.endswith("/apps/shop")
    page.page.click("#sign-out")
    page.page.wait_for_selector("#sign-in")
    assert page.page.evaluate("localStorage.getItem('drainpipe.token')") is None


def test_a_token_in_the_fragment_signs_in_and_leaves_the_address_bar(page: Page) -> None:
    token = page.site.apps["shop"]["api_token"]
    signed_in(page, "/apps/shop?window=2h")
    assert token not in page.page.url and page.page.url.endswith("/apps/shop?window=2h")
    assert page.page.evaluate("localStorage.getItem('drainpipe.token')") == token
    # An app's own token reads only that app, in the page as in the API.
    page.page.goto(page.site.url + "/apps/blog")
    page.page.wait_for_function("() => document.body.dataset.state === 'error'")
    page.page.wait_for_load_state("networkidle")  # the charts asked for with it are refused too
    assert all("403" in e for e in page.errors), page.errors
    page.errors.clear()
    assert "may not read" in page.text("#status") or "is for app" in page.text("#status")


def expected_rate(point: dict[str, Any] | None, field: str, step: int) -> float | None:
    if point is None:
        return None
    return float(point.get(field, 0)) * 60 / step


@pytest.mark.parametrize("window", ["2h", "24h", "72h", "7d"])
def test_every_chart_holds_what_the_api_answers(page: Page, window: str) -> None:
    signed_in(page, f"/apps/shop?window={window}&process_type=web")
    charts = page.charts()
    assert list(charts) == [
        "events", "latency", "throughput", "errors", "memory", "load",
        "custom.db.query", "custom.orders",
    ]  # fmt: skip
    assert page.page.locator(f"[data-window='{window}']").get_attribute("aria-pressed") == "true"
    base = "/api/v1/apps/shop"

    def api_points(metric: str) -> tuple[int, dict[float, dict[str, Any]]]:
        body = page.site.api(f"{base}/metrics/{metric}?window={window}&process_type=web")
        (series,) = [s for s in body["series"] if s["process_type"] == "web"]
        return body["step"], {
            datetime.fromisoformat(p["t"].replace("Z", "+00:00")).timestamp(): p
            for p in series["points"]
        }

    step, lat = api_points("router.latency")
    assert step == {"2h": 60, "24h": 600, "72h": 3600, "7d": 7200}[window]
    xs = charts["latency"]["xs"]
    assert xs == sorted(xs) and all(b - a == step for a, b in itertools.pairwise(xs))
    assert set(lat) <= set(xs) and lat
    latency = charts["latency"]
    assert latency["labels"] == ["p50", "p95", "p99", "max"]
    assert latency["shown"] == [True, True, True, False]  # max behind a click, as on Heroku
    for i, x in enumerate(xs):
        for k, field in enumerate(latency["labels"]):
            assert latency["values"][k][i] == (lat[x][field] if x in lat else None)

    _, status = api_points("router.status")
    thr = charts["throughput"]
    for k, cls in enumerate(thr["labels"]):
        for i, x in enumerate(xs):
            want = expected_rate(status.get(x), cls, step)
            got = thr["values"][k][i]
            assert (got is None and want is None) or got == pytest.approx(want or 0), (cls, x)
    total = sum(p["total"] for p in status.values())
    failed = sum(p.get("5xx", 0) for p in status.values())
    note = page.text("[data-chart=throughput] .note")
    share = page.page.evaluate(f"window.DrainpipeCharts.fmt({100 * failed / total})")
    assert note == f"{total:,} requests, failed (5xx) {share} %", note

    _, errors = api_points("router.errors")
    codes = sorted({c for p in errors.values() for c in p if c != "t"})
    assert charts["errors"]["labels"] == codes
    for k, code in enumerate(codes):
        seen = sum(v or 0 for v in charts["errors"]["values"][k]) * step / 60
        assert seen == pytest.approx(sum(p.get(code, 0) for p in errors.values()))

    _, memory = api_points("dyno.memory")
    fields = ["memory_total_mean", "memory_total_max", "memory_rss_mean", "memory_swap_max"]
    for k, field in enumerate([*fields, "memory_quota"]):
        for i, x in enumerate(xs):
            want = memory[x].get(field) if x in memory else None
            assert charts["memory"]["values"][k][i] == want, (field, x)
    _, load = api_points("dyno.load")
    for i, x in enumerate(xs):
        want = load[x]["load_avg_1m_max"] if x in load else None
        assert charts["load"]["values"][1][i] == want

    assert charts["custom.db.query"]["labels"] == ["p50", "p95", "p99", "max"]
    assert charts["custom.orders"]["labels"] == ["total"]
    assert sum(v or 0 for v in charts["custom.orders"]["values"][0]) == 120

    events = page.site.api(f"{base}/events?window={window}")["events"]
    shown = [
        e for e in events
        if e["kind"] not in ("state", "start", "stop", "exit") and e["process_type"] in ("", "web")
    ]  # fmt: skip
    visible = page.page.evaluate("window.drainpipe.state.events.length")
    assert visible == len(shown) and charts["events"]["events"] == len(shown) > 0
    for name, chart in charts.items():  # each chart draws every event as a line
        assert chart["lines"] == len(shown), name
    # The seeded latency alert is a band on the response-time chart only.
    assert {n: c["bands"] for n, c in charts.items() if c["bands"]} == {"latency": 1}
    assert page.page.locator(f".marker[title*='{DEPLOY}']").count() == 1
    page.shot(f"shop-{window}")


def test_switching_windows_and_process_types_follows_the_url(page: Page) -> None:
    signed_in(page, "/apps/shop")
    assert page.page.locator("#process-type").input_value() == "web"
    page.page.click("[data-window='24h']")
    page.ready(loads=1)
    page.page.wait_for_function("() => window.drainpipe.state.stepS === 600")
    assert "window=24h" in page.page.url
    page.page.select_option("#process-type", "worker")
    page.page.wait_for_function("() => location.search.includes('process_type=worker')")
    page.ready()
    page.page.wait_for_function("() => window.drainpipe.charts.length > 0")
    charts = page.charts()
    memory = page.site.api("/api/v1/apps/shop/metrics/dyno.memory?window=24h&process_type=worker")
    (series,) = memory["series"]
    assert series["process_type"] == "worker"
    assert sum(v is not None for v in charts["memory"]["values"][0]) == len(series["points"])
    assert all(v is None for v in charts["latency"]["values"][1])  # workers serve no requests
    page.page.go_back()  # history follows: back to web at 24h
    page.page.wait_for_function("() => document.querySelector('#process-type').value === 'web'")
    page.shot("shop-worker-24h")


def test_hovering_a_chart_shows_the_values_and_the_event_under_the_cursor(page: Page) -> None:
    signed_in(page, "/apps/shop?window=2h")
    deploy_at = page.page.evaluate(
        f"window.drainpipe.state.events.find((e) => e.text === {json.dumps(DEPLOY)}).ts_ms / 1000"
    )
    over = page.page.locator("[data-chart=latency] .u-over")
    box = over.bounding_box()
    x = page.page.evaluate(f"window.drainpipe.charts[1].u.valToPos({deploy_at}, 'x')")
    page.page.mouse.move(box["x"] + x, box["y"] + box["height"] / 2)
    tip = page.page.locator("[data-chart=latency] .tooltip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "p95:" in text and "ms" in text and DEPLOY in text, text
    idx = page.page.evaluate("window.drainpipe.charts[1].u.cursor.idx")
    p95 = page.page.evaluate(f"window.drainpipe.charts[1].spec.series[1].values[{idx}]")
    shown = page.page.evaluate(f"window.DrainpipeCharts.fmt({json.dumps(p95)})")
    assert f"p95: {shown} ms" in text
    # One cursor for every chart: the memory chart's legend shows the same minute.
    legend = page.text("[data-chart=memory] .u-legend")
    assert (
        page.page.evaluate(
            f"window.DrainpipeCharts.timeLabel(window.drainpipe.state.xs[{idx}], 60)"
        )
        in legend
    )
    # Inside the alert's band the tooltip says so.
    band_x = page.page.evaluate(
        "window.drainpipe.charts[1].u.valToPos(window.drainpipe.state.bands[0].from + 300, 'x')"
    )
    page.page.mouse.move(box["x"] + band_x, box["y"] + box["height"] / 2)
    page.page.wait_for_function(
        "() => document.querySelector('[data-chart=latency] .tooltip').innerText"
        ".includes('alert latency_p95')"
    )
    page.shot("shop-hover")
    page.page.screenshot(path=str(SHOTS / "dashboard.png"))  # the README's, as docs/dashboard.png


def test_dragging_zooms_into_a_range_and_the_url_follows(page: Page) -> None:
    signed_in(page, "/apps/shop?window=2h")
    over = page.page.locator("[data-chart=throughput] .u-over")
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    page.page.mouse.move(box["x"] + box["width"] * 0.4, y)
    page.page.mouse.down()
    page.page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=8)
    page.page.mouse.up()
    page.page.wait_for_function("() => location.search.includes('start=')")
    page.ready()
    page.page.wait_for_selector("#reset-zoom")
    state = page.page.evaluate("window.drainpipe.state")
    span = state["endS"] - state["startS"]
    assert 20 * 60 <= span <= 28 * 60 and state["stepS"] == 60
    page.shot("shop-zoomed")
    page.page.click("#reset-zoom")
    page.page.wait_for_function("() => !location.search.includes('start=')")
    page.ready()
    assert page.page.locator("[data-window='2h']").get_attribute("aria-pressed") == "true"


def test_a_live_window_refreshes_every_minute_without_a_reload(page: Page) -> None:
    page.page.clock.install()
    signed_in(page, "/apps/shop?window=2h")
    page.page.evaluate("window.drainpipe.marker = 'same page'")
    assert page.page.evaluate("window.drainpipe.loads") == 1
    now = int(time.time() * 1000)
    line = drains.event(now - MIN, "app", "web.1", "count#orders=5")
    assert (
        page.site.server.post(page.site.apps["shop"]["drain_secret"], drains.body([line]), 1) == 204
    )
    time.sleep(1.5)  # the server's flush interval is 0.2 s
    page.page.clock.run_for(61_000)
    page.ready(loads=2)
    assert page.page.evaluate("window.drainpipe.marker") == "same page"
    orders = page.charts()["custom.orders"]["values"][0]
    assert sum(v or 0 for v in orders) >= 125


def test_an_app_without_data_shows_how_to_send_it(page: Page) -> None:
    signed_in(page, "/apps/blog", page.site.team)
    empty = page.text("#empty")
    assert "heroku drains:add" in empty and "/logs -a blog" in empty
    assert "heroku labs:enable log-runtime-metrics -a blog" in empty
    page.shot("blog-empty")
