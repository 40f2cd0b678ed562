"""The read API over a real socket: custom metrics per name, and what an app lost."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

import pytest

from drainpipe.model import SKIP_REASONS
from drainpipe.sketch import RELATIVE_ACCURACY
from tests.support import drains
from tests.system.test_end_to_end import (
    MIN,
    Point,
    ServerAndApps,
    generate,
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
    # The catalogue: what has data (drainpipe's own counts are not among the metrics).
    assert body["process_types"] == ["web"]
    assert body["metrics"] == [
        "dyno.memory", "router.bytes", "router.connect", "router.errors", "router.latency",
        "router.status",
    ]  # fmt: skip
    # Stored: router lines at now - 60 s and memory at now - 61 s; the rest was lost.
    minutes = sorted(t - t % MIN for t in (now - 61_000, now - 60_000))
    assert (body["first_data"], body["last_data"]) == (iso(minutes[0]), iso(minutes[-1]))
    assert body["retention"] == {"60s": "8d", "600s": "8d", "3600s": "8d"}
    # The per-minute counts behind it are served like any custom metric.
    code, late_series = srv.get(
        "/api/v1/apps/shop/metrics/custom.@late.router?window=2h", shop["api_token"]
    )
    assert code == 200 and isinstance(late_series, dict), late_series
    assert sum(p["total"] for s in late_series["series"] for p in s["points"]) == 4
    assert srv.get("/api/v1/apps", shop["api_token"]) == (
        200,
        {"apps": [{"name": "shop", "url": "/api/v1/apps/shop"}]},
    )
    assert srv.get("/api/v1/apps", None)[0] == 401
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


def test_window_presets_are_herokus_windows_at_their_resolutions(server: ServerAndApps) -> None:
    srv, apps = server
    shop = apps["shop"]
    now = int(time.time() * 1000)
    lines = [drains.router(now - 90_000 + i * 1000, 10 + i, 200) for i in range(5)]
    assert srv.post(shop["drain_secret"], drains.body(lines), len(lines)) == 204
    wait_for_total(srv, shop, now - 10 * MIN, now + MIN, 5)
    token = shop["api_token"]
    for window, span_s, step in [("2h", 7200, 60), ("24h", 86400, 600), ("72h", 259200, 3600)]:
        code, body = srv.get(f"/api/v1/apps/shop/metrics/router.status?window={window}", token)
        assert code == 200 and isinstance(body, dict), body
        assert body["step"] == step
        start, end = (
            datetime.fromisoformat(body[k].replace("Z", "+00:00")).timestamp()
            for k in ("start", "end")
        )
        assert end - start == span_s and abs(end - now / 1000) < 60  # ends now
        pts = [p for series in body["series"] for p in series["points"]]
        assert sum(p["total"] for p in pts) == 5
        assert all(
            datetime.fromisoformat(p["t"].replace("Z", "+00:00")).timestamp() % step == 0
            for p in pts
        )
    code, week = srv.get("/api/v1/apps/shop/metrics/router.latency?window=7d", token)
    assert code == 200 and isinstance(week, dict) and week["step"] == 7200
    assert sum(p["count"] for s in week["series"] for p in s["points"]) == 5
    # An explicit step wins over the window's resolution.
    code, fine = srv.get("/api/v1/apps/shop/metrics/router.status?window=24h&step=60", token)
    assert code == 200 and isinstance(fine, dict) and fine["step"] == 60
    code, bad = srv.get("/api/v1/apps/shop/metrics/router.status?window=1y", token)
    assert code == 400 and isinstance(bad, dict) and "2h, 24h, 72h, 7d" in bad["error"]
    code, events = srv.get("/api/v1/apps/shop/events?window=7d", token)
    assert code == 200 and isinstance(events, dict) and events["events"] == []


def test_every_metric_at_every_preset_equals_the_recomputation(server: ServerAndApps) -> None:
    srv, apps = server
    shop = apps["shop"]
    now = int(time.time() * 1000)
    base = now - now % (10 * MIN) - 32 * MIN  # straddles 10-minute boundaries
    lines, exp = generate(random.Random(7), "shop", base)
    for i in range(0, len(lines), 400):
        chunk = lines[i : i + 400]
        assert srv.post(shop["drain_secret"], drains.body(chunk), len(chunk)) == 204
    total = sum(sum(v.values()) for v in exp.status.values())
    wait_for_total(srv, shop, base - 10 * MIN, base + 15 * MIN, total)

    def get(metric: str, window: str, pt: str = "") -> dict[tuple[str, str], Point]:
        query = f"window={window}" + (f"&process_type={pt}" if pt else "")
        code, body = srv.get(f"/api/v1/apps/shop/metrics/{metric}?{query}", shop["api_token"])
        assert code == 200 and isinstance(body, dict), body
        return {(s["process_type"], p["t"]): p for s in body["series"] for p in s["points"]}

    def buckets(
        by_minute: dict[tuple[str, int], Any], step_ms: int
    ) -> dict[tuple[str, str], list[Any]]:
        out: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for (pt, m), values in by_minute.items():
            out[(pt, iso(m - m % step_ms))].append(values)
        return out

    for window, step_s in (("2h", 60), ("24h", 600), ("72h", 3600), ("7d", 7200)):
        step_ms = step_s * 1000
        lat = get("router.latency", window)
        want_lat = {
            k: [x for v in vs for x in v] for k, vs in buckets(exp.latency, step_ms).items()
        }
        assert set(lat) == set(want_lat), window
        for k, values in want_lat.items():
            p = lat[k]
            assert (p["count"], p["min"], p["max"]) == (len(values), min(values), max(values))
            assert p["mean"] == pytest.approx(sum(values) / len(values), rel=1e-12)
            for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
                truth = nearest_rank(values, q)
                assert abs(p[key] - truth) <= RELATIVE_ACCURACY * truth * (1 + 1e-9), (window, key)
        status = get("router.status", window)
        for k, parts in buckets(exp.status, step_ms).items():
            classes: dict[str, int] = defaultdict(int)
            for part in parts:
                for c, n in part.items():
                    classes[c] += n
            assert status[k] == {"t": k[1], "total": sum(classes.values()), **classes}, window
        # Every generated router line says connect=1ms and bytes=656.
        connect, sent = get("router.connect", window), get("router.bytes", window)
        for k, parts in buckets(exp.status, step_ms).items():
            n = sum(sum(part.values()) for part in parts)
            assert (connect[k]["count"], connect[k]["p95"], connect[k]["max"]) == (n, 1, 1)
            assert (sent[k]["count"], sent[k]["sum"], sent[k]["max"]) == (n, 656 * n, 656)
        errors = get("router.errors", window)
        want_errors: dict[tuple[str, str], dict[str, int]] = {}
        for k, parts in buckets(exp.errors, step_ms).items():
            codes: dict[str, int] = defaultdict(int)
            for part in parts:
                for c, n in part.items():
                    codes[c] += n
            want_errors[k] = dict(codes)
        assert {
            k: {c: v for c, v in p.items() if c != "t"} for k, p in errors.items()
        } == want_errors
        for pt in ("", "worker"):
            mem = get("dyno.memory", window, pt)
            want_mem = {
                k: [s for v in vs for s in v]
                for k, vs in buckets(exp.memory, step_ms).items()
                if not pt or k[0] == pt
            }
            assert set(mem) == set(want_mem), (window, pt)
            for k, samples in want_mem.items():
                totals = [s[0] for s in samples]
                assert mem[k]["memory_total_mean"] == pytest.approx(
                    sum(totals) / len(totals), rel=1e-12
                )
                assert mem[k]["memory_total_max"] == max(totals)
                assert mem[k]["memory_swap_max"] == max(s[2] for s in samples)
        load = get("dyno.load", window)
        for k, vs in buckets(exp.load, step_ms).items():
            ones = [x for v in vs for x in v]
            assert load[k]["load_avg_1m_mean"] == pytest.approx(sum(ones) / len(ones), rel=1e-12)
            assert load[k]["load_avg_1m_max"] == max(ones)
