"""Dashboard: navigation to every chart drawn, in headless Chromium, at each preset.

Builds an embedded store with one app of 10 process types and 7 full days of router,
memory and load minutes (plus a deploy and a restart every 6 hours), settles it into tier
rows as `up`'s upkeep does, runs `drainpipe up` on it, and opens `/apps/bench` for
`web` at 2h, 24h, 72h and 7d in a fresh browser context each time (nothing cached).
The figure is the page's own mark (`window.drainpipe.drawnAt`, ms after navigation
start, set once every chart has drawn); bytes are what crossed the wire for the view
(the page, its files and every API answer), from the browser's resource timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.settle import settle_measured
from bench.summaries import encoded, minute_summaries
from drainpipe.model import MINUTE_MS, EventRecord
from drainpipe.store import StoredEvent
from drainpipe.store.apps import sqlite_registry
from drainpipe.store.sqlite import SqliteStore
from tests.support import drains

WINDOWS = ("2h", "24h", "72h", "7d")
CHROMIUM = "/usr/bin/chromium"
PROCESS_TYPES = ("web", *(f"worker{i}" for i in range(1, 10)))


def build(data: Path, end_ms: int) -> str:
    rng = np.random.default_rng(11)
    registry = sqlite_registry(data / "apps.sqlite")
    store = SqliteStore(data / "metrics.sqlite")
    new = registry.create("bench")
    minutes = 7 * 1440
    start = end_ms - minutes * MINUTE_MS
    for n, pt in enumerate(PROCESS_TYPES):
        batch = minute_summaries(new.app.id, start, minutes, rng, pt)
        for j in range(0, len(batch), 5000):
            store.write_summaries(encoded(batch[j : j + 5000]))
        print(f"  built {n + 1}/{len(PROCESS_TYPES)} process types", flush=True)
    events = []
    for t in range(start, end_ms, 6 * 3_600_000):
        deploy = "Deploy 2c3a0b24 by ops@example.com"
        events.append(EventRecord(t, "", "api", "deploy", deploy, {}))
        events.append(EventRecord(t + 60_000, "web", "web.1", "restart", "Restarting", {}))
    store.write_events([StoredEvent(new.app.id, e) for e in events])
    hours, elapsed, _, _ = settle_measured(store)
    print(f"  settled {hours} hours into tier rows in {elapsed:.1f} s", flush=True)
    store.close()
    registry.close()
    return new.api_token


def view(browser: Any, url: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("() => window.drainpipe && window.drainpipe.loads >= 1", timeout=60_000)
    drawn = page.evaluate("window.drainpipe.drawnAt")
    charts = page.evaluate("window.drainpipe.charts.length")
    transferred = page.evaluate(
        """() => performance.getEntriesByType('navigation')
            .concat(performance.getEntriesByType('resource'))
            .reduce((a, e) => a + (e.transferSize || 0), 0)"""
    )
    context.close()
    if errors:
        raise RuntimeError(f"{url}: {errors}")
    return {"drawn_ms": drawn, "bytes": transferred, "charts": charts}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7, help="views per preset (median)")
    p.add_argument("--data-dir", type=Path, help="reuse a store built before")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    end_ms = (int(time.time() * 1000) // MINUTE_MS) * MINUTE_MS
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="dp-dash-"))
    meta = data / "bench-dashboard.json"
    if meta.exists():
        token = json.loads(meta.read_text())["token"]
    else:
        t = time.monotonic()
        token = build(data, end_ms)
        meta.write_text(json.dumps({"token": token}))
        print(f"  store built in {time.monotonic() - t:.0f} s at {data}")
    server = drains.start(data, None, "--workers", "0")
    results: dict[str, dict[str, float]] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            view(browser, f"{server.url}/apps/bench?window=2h#token={token}")  # warm the server
            for window in WINDOWS:
                url = f"{server.url}/apps/bench?window={window}&process_type=web#token={token}"
                runs = [view(browser, url) for _ in range(args.runs)]
                results[window] = {
                    "drawn_ms_median": round(statistics.median(r["drawn_ms"] for r in runs), 1),
                    "drawn_ms_max": round(max(r["drawn_ms"] for r in runs), 1),
                    "kB": round(statistics.median(r["bytes"] for r in runs) / 1000, 1),
                    "charts": runs[0]["charts"],
                }
                r = results[window]
                print(
                    f"  {window:>3}: drawn {r['drawn_ms_median']:6.1f} ms median, "
                    f"{r['drawn_ms_max']:6.1f} ms max of {args.runs}; {r['kB']:6.1f} kB; "
                    f"{r['charts']} charts",
                    flush=True,
                )
            browser.close()
    finally:
        drains.stop(server)
    print(json.dumps({"bench": "dashboard", "runs": args.runs, "results": results}))


if __name__ == "__main__":
    main()
