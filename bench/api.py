"""API latency: p50/p99 of metric reads for 2 h, 24 h, 72 h and 7-day windows.

Builds an embedded store with 1,000 apps of one-minute data (two hours each), plus a few
apps with seven full days (router, memory and load families, a sketch per router
minute), settles its closed hours into 10-minute and hour rows as `up`'s upkeep does,
then times GETs against `drainpipe up` over HTTP at Heroku's resolutions: 1 minute for
2 h, 10 minutes for 24 h, 1 hour for 72 h, 2 hours for 7 days.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.settle import settle_measured
from bench.summaries import encoded, minute_summaries
from drainpipe.model import MINUTE_MS
from drainpipe.store.apps import sqlite_registry
from drainpipe.store.sqlite import SqliteStore
from tests.support import drains

WINDOWS = (
    ("2h", 2 * 3600, 60),
    ("24h", 24 * 3600, 600),
    ("72h", 72 * 3600, 3600),
    ("7d", 7 * 86400, 7200),
)


def build(data: Path, apps: int, big: int, end_ms: int) -> dict[str, str]:
    rng = np.random.default_rng(3)
    registry = sqlite_registry(data / "apps.sqlite")
    store = SqliteStore(data / "metrics.sqlite")
    tokens = {}
    for i in range(apps):
        new = registry.create(f"app{i:04d}")
        minutes = 7 * 1440 if i < big else 120
        start = end_ms - minutes * MINUTE_MS
        batch = minute_summaries(new.app.id, start, minutes, rng)
        for j in range(0, len(batch), 5000):
            store.write_summaries(encoded(batch[j : j + 5000]))
        if i < big:
            tokens[new.app.name] = new.api_token
        if i % 100 == 0:
            print(f"  built {i}/{apps} apps", flush=True)
    # What `drainpipe up`'s upkeep does every 30 s; timed here, where it does it all at once.
    hours, elapsed, before, peak = settle_measured(store)
    print(
        f"  settled {hours} hours into tier rows in {elapsed:.1f} s; RSS {before:.0f} MB "
        f"before, peak {peak:.0f} MB during",
        flush=True,
    )
    store.close()
    registry.close()
    return tokens


def measure(
    url: str, name: str, token: str, end_ms: int, requests: int
) -> dict[str, dict[str, float]]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port))
    out = {}
    for label, seconds, step in WINDOWS:
        for metric in ("router.latency", "dyno.memory"):
            start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end_ms / 1000 - seconds))
            end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end_ms / 1000))
            path = f"/api/v1/apps/{name}/metrics/{metric}?start={start}&end={end}&step={step}"
            times = []
            for _ in range(requests):
                t = time.perf_counter()
                conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
                body = conn.getresponse().read()
                times.append((time.perf_counter() - t) * 1000)
            points = sum(len(s["points"]) for s in json.loads(body)["series"])
            times.sort()
            out[f"{metric} {label}"] = {
                "p50_ms": round(statistics.median(times), 2),
                "p99_ms": round(times[int(len(times) * 0.99) - 1], 2),
                "points": points,
            }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--apps", type=int, default=1000)
    p.add_argument("--big", type=int, default=3, help="apps with seven days of data")
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--data-dir", type=Path, help="reuse a store built before")
    args = p.parse_args()
    end_ms = (int(time.time() * 1000) // 3_600_000) * 3_600_000
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="dp-api-"))
    meta = data / "bench-api.json"
    if meta.exists():
        tokens, end_ms = json.loads(meta.read_text()).values()
    else:
        t = time.monotonic()
        tokens = build(data, args.apps, args.big, end_ms)
        meta.write_text(json.dumps({"tokens": tokens, "end_ms": end_ms}))
        print(f"  store built in {time.monotonic() - t:.0f} s at {data}")
    server = drains.start(data, None, "--workers", "0")
    try:
        name, token = next(iter(tokens.items()))
        result = measure(server.url, name, token, end_ms, args.requests)
    finally:
        drains.stop(server)
    for k, v in result.items():
        print(
            f"  {k:28s} p50 {v['p50_ms']:7.2f} ms  p99 {v['p99_ms']:7.2f} ms"
            f"  ({v['points']} points)"
        )
    print(json.dumps({"bench": "api", "results": result}))


if __name__ == "__main__":
    main()
