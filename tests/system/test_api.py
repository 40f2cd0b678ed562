"""The read API over a real socket: custom metrics per name, and what an app lost."""

from __future__ import annotations

import time

import pytest

from drainpipe.model import SKIP_REASONS
from drainpipe.sketch import RELATIVE_ACCURACY
from tests.support import drains
from tests.system.test_end_to_end import (
    MIN,
    Point,
    ServerAndApps,
    iso,
    nearest_rank,
    points,
    server,
    wait_for_total,
)

__all__ = ["server"]  # the fixture, shared with the end-to-end tests


def test_custom_metrics_in_app_lines_come_back_per_name(server: ServerAndApps) -> None:
    srv, apps = server
    shop = apps["shop"]
    now = int(time.time() * 1000)
    base = now - now % MIN - 3 * MIN
    db = [4.0, 6.5, 12.0, 30.0, 8.0]
    lines = [
        drains.event(base + i * 1000, "app", "web.1", f"measure#db.query={v}ms count#signups=2")
        for i, v in enumerate(db)
    ]
    lines.append(drains.event(base + 9000, "app", "worker.1", "sample#queue.depth=7"))
    lines.append(drains.event(base + 9500, "app", "worker.2", "sample#queue.depth=3"))
    assert srv.post(shop["drain_secret"], drains.body(lines), len(lines)) == 204
    start, end = base - MIN, base + 5 * MIN
    deadline = time.monotonic() + 15
    pts: dict[tuple[str, str], Point] = {}
    while time.monotonic() < deadline:
        pts = points(srv, shop, "custom.db.query", start, end)
        if pts and next(iter(pts.values()))["count"] == len(db):
            break
        time.sleep(0.1)
    p = pts[("web", iso(base))]
    assert (p["count"], p["min"], p["max"]) == (5, 4.0, 30.0)
    assert p["mean"] == pytest.approx(sum(db) / len(db))
    truth = nearest_rank(db, 0.95)
    assert abs(p["p95"] - truth) <= RELATIVE_ACCURACY * truth * (1 + 1e-9)
    assert points(srv, shop, "custom.signups", start, end)[("web", iso(base))]["total"] == 10.0
    depth = points(srv, shop, "custom.queue.depth", start, end)[("worker", iso(base))]
    assert (depth["sample_min"], depth["sample_max"], depth["sample_mean"]) == (3.0, 7.0, 5.0)
    code, body = srv.get("/api/v1/apps/shop/metrics/custom.no%20such", shop["api_token"])
    assert code == 404 and isinstance(body, dict) and "custom.<name>" in body["error"]


def test_the_app_endpoint_says_what_the_app_lost_and_why(server: ServerAndApps) -> None:
    """Drops were only in /metrics, by app id; an app could not see what it lost."""
    srv, apps = server
    shop, blog = apps["shop"], apps["blog"]
    now = int(time.time() * 1000)
    fresh = [drains.router(now - 60_000, 5, 200)] * 3
    assert srv.post(blog["drain_secret"], drains.body(fresh), 3) == 204
    first = [
        *fresh,
        drains.event(now - 50_000, "app", "web.1", "count#big=1e20"),  # unreadable value
        drains.router(now - 30 * 86_400_000, 5, 200),  # older than the retention
        drains.router(now - 20 * 86_400_000, 5, 200),
        drains.router(now + 3_600_000, 5, 200),  # an hour ahead: clock skew
    ]
    assert srv.post(shop["drain_secret"], drains.body(first), len(first)) == 204
    # 8 minutes behind the newest line of shop's web dynos: late (the lateness is 5).
    late = [drains.router(now - 8 * MIN, 5, 200)] * 4
    late.append(drains.memory(now - 8 * MIN, "web.1", 100.0, 90.0, 0.0, 512.0))
    late.append(drains.memory(now - 61_000, "web.1", 100.0, 90.0, 0.0, 512.0))
    assert srv.post(shop["drain_secret"], drains.body(late[-1:]), 1) == 204
    assert srv.post(shop["drain_secret"], drains.body(late[:-1]), 5) == 204
    want = {
        "total": 9,
        "late": {"router": 4, "dyno.memory": 1, "dyno.load": 0, "custom": 0},
        "skipped": {
            **{reason: 0 for reason in SKIP_REASONS},
            "custom_metric": 1,
            "too_old": 2,
            "clock_skew": 1,
        },
    }
    deadline = time.monotonic() + 20
    body: object = None
    while time.monotonic() < deadline:
        code, body = srv.get("/api/v1/apps/shop", shop["api_token"])
        assert code == 200, body
        assert isinstance(body, dict)
        if body["dropped"]["total"] >= want["total"]:
            break
        time.sleep(0.2)
    assert isinstance(body, dict) and body["app"] == "shop"
    assert body["dropped"] == want
    # Another app's lines were not made late, and it lost nothing.
    wait_for_total(srv, blog, now - 10 * MIN, now + MIN, 3)
    code, other = srv.get("/api/v1/apps/blog", blog["api_token"])
    assert code == 200 and isinstance(other, dict) and other["dropped"]["total"] == 0
    assert srv.get("/api/v1/apps/shop", blog["api_token"])[0] == 403
    assert srv.get("/api/v1/apps/shop", None)[0] == 401
    # A window that ends before the drops has none of them.
    code, before = srv.get(f"/api/v1/apps/shop?end={iso(now - 40 * 86_400_000)}", shop["api_token"])
    assert code == 200 and isinstance(before, dict) and before["dropped"]["total"] == 0
    code, bad = srv.get(f"/api/v1/apps/shop?start={iso(now)}&end={iso(now)}", shop["api_token"])
    assert code == 400 and isinstance(bad, dict) and "before" in bad["error"]
    # The reserved names are not the app's to forge.
    forged = [drains.event(now - 40_000, "app", "web.1", "count#@skipped.too_old=5")]
    assert srv.post(shop["drain_secret"], drains.body(forged), 1) == 204
    time.sleep(1.0)
    again = srv.get("/api/v1/apps/shop", shop["api_token"])[1]
    assert isinstance(again, dict) and again["dropped"] == want
