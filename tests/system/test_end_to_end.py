"""drainpipe up over a real socket: drain bodies in, exact per-minute metrics out."""

from __future__ import annotations

import gzip
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drainpipe.sketch import RELATIVE_ACCURACY
from tests.support import drains

MIN = 60_000
APPS = ("shop", "blog", "api-x")


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


class Expected:
    def __init__(self) -> None:
        self.latency: dict[tuple[str, int], list[float]] = defaultdict(list)
        self.status: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.errors: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.memory: dict[tuple[str, int], list[tuple[float, float, float, float]]] = defaultdict(
            list
        )
        self.load: dict[tuple[str, int], list[float]] = defaultdict(list)
        self.events: list[tuple[int, str]] = []
        self.skipped = 0


def generate(rng: random.Random, app: str, base: int) -> tuple[list[str], Expected]:
    exp = Expected()
    lines: list[str] = []
    for _ in range(1500):
        ms = base + rng.randrange(0, 5 * MIN)
        minute = ms - ms % MIN
        service = max(1, int(rng.lognormvariate(3.5, 1.0)))
        roll = rng.random()
        code = None
        if roll < 0.03:
            status, code, service = 503, rng.choice(["H12", "H13"]), 30000
        elif roll < 0.10:
            status = 404
        elif roll < 0.15:
            status = 304
        else:
            status = 200
        lines.append(
            drains.router(ms, service, status, dyno=rng.choice(["web.1", "web.2"]), code=code)
        )
        exp.latency[("web", minute)].append(float(service))
        exp.status[("web", minute)][f"{status // 100}xx"] += 1
        if code:
            exp.errors[("web", minute)][code] += 1
    for source in ("web.1", "web.2", "worker.1"):
        pt = source.split(".")[0]
        for k in range(15):  # every 20 s
            ms = base + k * 20_000 + rng.randrange(0, 1000)
            minute = ms - ms % MIN
            total = round(rng.uniform(100, 500), 2)
            rss, swap = round(total * 0.9, 2), round(rng.uniform(0, 5), 2)
            lines.append(drains.memory(ms, source, total, rss, swap, 512.0))
            exp.memory[(pt, minute)].append((total, rss, swap, 512.0))
            one = round(rng.uniform(0, 4), 2)
            lines.append(drains.load(ms + 1, source, one))
            exp.load[(pt, minute)].append(one)
    for ms, app_name, procid, text in [
        (base + 1000, "app", "api", "Release v16 created by user a@example.com"),
        (base + 2000, "app", "api", "Deploy 059375fe by user a@example.com"),
        (
            base + 3000,
            "app",
            "api",
            "Scaled to web@2:Standard-1X worker@1:Standard-1X by user a@example.com",
        ),
        (base + 4000, "heroku", "web.1", "State changed from starting to up"),
        (base + 5000, "heroku", "web.2", "Error R14 (Memory quota exceeded)"),
        (
            base + 6000,
            "heroku",
            "logplex",
            "Error L10 (output buffer overflow): 7 messages dropped since "
            "2026-11-21T10:00:00+00:00.",
        ),
    ]:
        lines.append(drains.event(ms, app_name, procid, text))
        exp.events.append((ms, text))
    malformed = [
        "<158>1 not-a-time host heroku router - at=info status=200 service=1ms\n",
        "<158>garbage without a header\n",
        f"<158>1 {drains.ts(base)} host heroku router - at=info dyno=web.1 path=/\n",
    ]
    lines.extend(malformed)
    exp.skipped = len(malformed)
    lines.extend(
        drains.event(base + 10, "app", "web.1", "Completed 200 OK in 12ms") for _ in range(5)
    )  # the app's own output: not a metric, not an error
    rng.shuffle(lines)
    return lines, exp


def nearest_rank(values: list[float], q: float) -> float:
    return float(np.quantile(np.array(values), q, method="inverted_cdf"))


Point = dict[str, Any]  # one decoded JSON point of the metrics API: "t" and its numbers
ServerAndApps = tuple[drains.Server, dict[str, dict[str, str]]]


def points(
    server: drains.Server, app: dict[str, str], metric: str, start: int, end: int, step: int = 60
) -> dict[tuple[str, str], Point]:
    code, body = server.get(
        f"/api/v1/apps/{app['name']}/metrics/{metric}?start={iso(start)}&end={iso(end)}&step={step}",
        app["api_token"],
    )
    assert code == 200, body
    assert isinstance(body, dict) and body["step"] == step and body["metric"] == metric
    out: dict[tuple[str, str], Point] = {}
    for series in body["series"]:
        for p in series["points"]:
            out[(series["process_type"], p["t"])] = p
    return out


def wait_for_total(
    server: drains.Server, app: dict[str, str], start: int, end: int, total: int
) -> None:
    deadline = time.monotonic() + 30
    seen = -1
    while time.monotonic() < deadline:
        pts = points(server, app, "router.status", start, end)
        seen = sum(p["total"] for p in pts.values())
        if seen == total:
            return
        time.sleep(0.2)
    raise AssertionError(f"{app['name']}: {seen} requests visible, expected {total}")


@pytest.fixture(params=["2", "0"], ids=["worker-processes", "one-process"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerAndApps]:
    apps = {name: drains.create_app(tmp_path, name) for name in APPS}
    srv = drains.start(tmp_path, None, "--flush-interval", "0.2", "--workers", request.param)
    yield srv, apps
    if srv.proc.poll() is None:
        assert drains.stop(srv) == 0, srv.log_path.read_text()[-3000:]


def test_drain_bodies_for_several_apps_come_back_as_exact_metrics(server: ServerAndApps) -> None:
    srv, apps = server
    rng = random.Random(20261121)
    now = int(time.time() * 1000)
    base = now - now % (10 * MIN) - 32 * MIN  # straddles a 10-minute boundary
    expected: dict[str, Expected] = {}
    bodies: list[tuple[str, bytes, int]] = []
    for name in APPS:
        lines, exp = generate(rng, name, base)
        expected[name] = exp
        i = 0
        while i < len(lines):
            n = rng.randint(1, 500)
            chunk = lines[i : i + n]
            bodies.append((apps[name]["drain_secret"], drains.body(chunk), len(chunk)))
            i += n
    rng.shuffle(bodies)
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda b: srv.post(*b), bodies))
    assert set(codes) == {204}

    start, end = base - 10 * MIN, base + 15 * MIN
    for name in APPS:
        app, exp = apps[name], expected[name]
        wait_for_total(srv, app, start, end, sum(sum(v.values()) for v in exp.status.values()))

        lat = points(srv, app, "router.latency", start, end)
        assert set(lat) == {(pt, iso(m)) for pt, m in exp.latency}
        for (pt, m), values in exp.latency.items():
            p = lat[(pt, iso(m))]
            assert p["count"] == len(values)
            assert p["min"] == min(values) and p["max"] == max(values)
            assert p["mean"] == pytest.approx(sum(values) / len(values), rel=1e-12)
            for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
                truth = nearest_rank(values, q)
                assert abs(p[key] - truth) <= RELATIVE_ACCURACY * truth * (1 + 1e-9), (
                    key,
                    p,
                    truth,
                )

        status = points(srv, app, "router.status", start, end)
        for (pt, m), classes in exp.status.items():
            assert status[(pt, iso(m))] == {"t": iso(m), "total": sum(classes.values()), **classes}

        errors = points(srv, app, "router.errors", start, end)
        assert {k: {c: v for c, v in p.items() if c != "t"} for k, p in errors.items()} == {
            (pt, iso(m)): dict(codes) for (pt, m), codes in exp.errors.items()
        }

        mem = points(srv, app, "dyno.memory", start, end)
        assert set(mem) == {(pt, iso(m)) for pt, m in exp.memory}
        for (pt, m), samples in exp.memory.items():
            p = mem[(pt, iso(m))]
            totals, rss, swap = (
                [s[0] for s in samples],
                [s[1] for s in samples],
                [s[2] for s in samples],
            )
            assert p["memory_total_mean"] == pytest.approx(sum(totals) / len(totals), rel=1e-12)
            assert p["memory_total_max"] == max(totals)
            assert p["memory_rss_mean"] == pytest.approx(sum(rss) / len(rss), rel=1e-12)
            assert p["memory_rss_max"] == max(rss)
            assert p["memory_swap_max"] == max(swap)
            assert p["memory_quota"] == 512.0

        ld = points(srv, app, "dyno.load", start, end)
        for (pt, m), ones in exp.load.items():
            p = ld[(pt, iso(m))]
            assert p["load_avg_1m_mean"] == pytest.approx(sum(ones) / len(ones), rel=1e-12)
            assert p["load_avg_1m_max"] == max(ones)

        # Downsampled to 10 minutes: totals are exact, percentiles come from merged sketches.
        coarse = points(srv, app, "router.latency", start, end, step=600)
        by_bucket: dict[int, list[float]] = defaultdict(list)
        for (_, m), values in exp.latency.items():
            by_bucket[m - m % (10 * MIN)].extend(values)
        assert len(by_bucket) == 2
        for b, values in by_bucket.items():
            p = coarse[("web", iso(b))]
            assert p["count"] == len(values) and p["max"] == max(values)
            truth = nearest_rank(values, 0.95)
            assert abs(p["p95"] - truth) <= RELATIVE_ACCURACY * truth * (1 + 1e-9)
        coarse_status = points(srv, app, "router.status", start, end, step=600)
        assert sum(p["total"] for p in coarse_status.values()) == sum(
            sum(v.values()) for v in exp.status.values()
        )

        code, body = srv.get(
            f"/api/v1/apps/{name}/events?start={iso(start)}&end={iso(end)}", app["api_token"]
        )
        assert code == 200 and isinstance(body, dict)
        assert sorted((e["ts_ms"], e["text"]) for e in body["events"]) == sorted(exp.events)

    own = srv.text("/metrics")
    skipped = sum(
        float(line.rsplit(" ", 1)[1])
        for line in own.splitlines()
        if line.startswith("drainpipe_lines_skipped_total{")
    )
    assert skipped == sum(e.skipped for e in expected.values())
    assert "drainpipe_logplex_dropped_messages_total 21.0" in own


def test_bad_requests_get_clear_answers_and_store_nothing(server: ServerAndApps) -> None:
    srv, apps = server
    shop = apps["shop"]
    now = int(time.time() * 1000)
    good = drains.body([drains.router(now, 5, 200)])
    assert srv.post("wrong-secret", good, 1) == 401
    assert srv.post(shop["drain_secret"], good, 2) == 400  # Logplex-Msg-Count mismatch
    assert srv.post(shop["drain_secret"], b"40 <158>1 short", 1) == 400  # frame runs past the end
    assert srv.post(shop["drain_secret"], good, 1, {"Content-Type": "text/plain"}) == 415
    future = drains.body([drains.router(now + 3_600_000, 5, 200)])
    assert srv.post(shop["drain_secret"], future, 1) == 204  # accepted, the line refused as skew
    time.sleep(1)
    pts = points(srv, shop, "router.status", now - 3_600_000, now + 7_200_000)
    assert pts == {}
    own = srv.text("/metrics")
    assert 'drainpipe_lines_skipped_total{reason="clock_skew"} 1.0' in own
    assert 'drainpipe_drain_batches_rejected_total{reason="msg_count"} 1.0' in own


def test_tokens_read_only_their_own_app(server: ServerAndApps) -> None:
    srv, apps = server
    path = "/api/v1/apps/shop/metrics/router.latency"
    assert srv.get(path, None)[0] == 401
    assert srv.get(path, "not-a-token")[0] == 401
    assert srv.get(path, apps["blog"]["api_token"])[0] == 403
    assert srv.get(path, apps["shop"]["api_token"])[0] == 200
    code, body = srv.get(
        "/api/v1/apps/shop/metrics/router.latency?step=45", apps["shop"]["api_token"]
    )
    assert code == 400 and isinstance(body, dict) and "multiple of 60" in body["error"]
    code, body = srv.get("/api/v1/apps/shop/metrics/nope", apps["shop"]["api_token"])
    assert code == 404 and isinstance(body, dict) and "router.latency" in body["error"]


def test_a_retried_frame_is_not_counted_twice(server: ServerAndApps) -> None:
    srv, apps = server
    shop = apps["shop"]
    now = int(time.time() * 1000) - 120_000
    payload = drains.body([drains.router(now, 5, 200), drains.router(now, 6, 200)])
    frame = {"Logplex-Frame-Id": "0123456789abcdef0123456789abcdef"}
    assert srv.post(shop["drain_secret"], payload, 2, frame) == 204
    assert srv.post(shop["drain_secret"], payload, 2, frame) == 204
    wait_for_total(srv, shop, now - 600_000, now + 600_000, 2)
    time.sleep(0.5)
    wait_for_total(srv, shop, now - 600_000, now + 600_000, 2)


def rfc5424(line: str) -> str:
    """A Logplex-style line as an RFC 5424 sender (log-shuttle) writes it: `- -`."""
    head, _, rest = line.partition(" - ")
    return f"{head} - - {rest}"


def test_what_real_senders_send_is_counted_exactly(server: ServerAndApps) -> None:
    """One gzip body, as `log-shuttle -gzip -bearer-token` posts it, of RFC 5424 lines: two
    responses, a websocket and an H15 idle close (throughput, no response time), a state
    change, an L10 report in the wording that names the drain, and l2met's old syntax."""
    srv, apps = server
    shop = apps["shop"]
    now = int(time.time() * 1000)
    base = now - now % MIN - 3 * MIN
    lines = [
        drains.router(base + 1000, 20, 200),
        drains.router(base + 2000, 30, 200),
        drains.router(base + 3000, 45231, 101),  # a websocket that stayed open 45 s
        drains.router(base + 4000, 55000, 503, code="H15"),
        drains.event(base + 5000, "heroku", "web.1", "State changed from starting to up"),
        drains.event(
            base + 6000,
            "heroku",
            "logplex",
            "Error L10 (output buffer overflow): drain 'd.2b9a7c6e-1f0d-4e3b-9a8c-5d4e3f2a1b0c' "
            f"dropped 11 messages since {drains.ts(base)}.",
        ),
        drains.event(base + 7000, "app", "web.1", "measure.db.query=12ms"),
    ]
    payload = gzip.compress(drains.body([rfc5424(line) for line in lines]))
    headers = {"Content-Encoding": "gzip", "Authorization": f"Bearer {shop['drain_secret']}"}
    assert srv.post("unused", payload, len(lines), headers) == 204
    start, end = base - MIN, base + 5 * MIN
    wait_for_total(srv, shop, start, end, 4)
    status = points(srv, shop, "router.status", start, end)[("web", iso(base))]
    assert (status["total"], status["1xx"], status["2xx"], status["5xx"]) == (4, 1, 2, 1)
    latency = points(srv, shop, "router.latency", start, end)[("web", iso(base))]
    assert (latency["count"], latency["min"], latency["max"]) == (2, 20.0, 30.0)
    assert points(srv, shop, "router.errors", start, end)[("web", iso(base))]["H15"] == 1
    deadline = time.monotonic() + 15
    events: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        db = points(srv, shop, "custom.db.query", start, end)
        code, body = srv.get(
            f"/api/v1/apps/shop/events?start={iso(start)}&end={iso(end)}", shop["api_token"]
        )
        assert code == 200 and isinstance(body, dict)
        events = body["events"]
        if db and len(events) == 2:
            break
        time.sleep(0.1)
    assert db[("web", iso(base))]["count"] == 1
    assert sorted(str(e["kind"]) for e in events) == ["logplex_drop", "state"]
    assert "drainpipe_logplex_dropped_messages_total 11.0" in srv.text("/metrics")


def test_one_request_of_in_order_lines_feeding_two_metrics_counts_every_line(
    server: ServerAndApps,
) -> None:
    """30 app lines a minute apart, from 40 to 11 minutes ago, each with a count# and a
    measure#: every line counts in both (measure# used to lose 24 as late)."""
    srv, apps = server
    shop = apps["shop"]
    now = int(time.time() * 1000)
    base = now - now % MIN - 40 * MIN
    lines = [
        drains.event(base + m * MIN, "app", "web.1", "count#orders=1 measure#db.query=5ms")
        for m in range(30)
    ]
    assert srv.post(shop["drain_secret"], drains.body(lines), len(lines)) == 204
    start, end = base - MIN, base + 31 * MIN
    deadline = time.monotonic() + 15
    orders = queries = 0.0
    while time.monotonic() < deadline:
        orders = sum(p["total"] for p in points(srv, shop, "custom.orders", start, end).values())
        queries = sum(p["count"] for p in points(srv, shop, "custom.db.query", start, end).values())
        if (orders, queries) == (30, 30):
            break
        time.sleep(0.1)
    assert (orders, queries) == (30, 30)
