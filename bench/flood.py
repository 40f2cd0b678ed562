"""Hostile load: one app floods new custom metric names; another app's freshness and memory.

Starts `drainpipe up` (default settings) on a fresh data directory with two apps. After
10 s of quiet, the noisy app sends `--requests` drain bodies of `--names` lines, each line
a custom metric of a name never sent before (`count#flood.<n>=1`): with the defaults,
640,000 series in 20 requests. Meanwhile the probe app sends a one-line router body
every second and the API is polled until each shows (freshness, as in `bench.steady`),
and the server tree's RSS is sampled every 0.5 s. Prints the RSS before, at its peak and
at the end, the probes' freshness (median, max) during and after the flood, and what
/metrics says was limited.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.probe import Prober
from bench.steady import MemorySampler
from drainpipe.store.apps import sqlite_registry
from tests.support import drains


def flood_body(start: int, names: int, now_ms: int) -> tuple[bytes, int]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ms / 1000))
    lines = [
        f"<190>1 {stamp}.000+00:00 host app web.1 - count#flood.{start + i}=1\n"
        for i in range(names)
    ]
    return drains.body(lines), len(lines)


def main() -> None:
    p = argparse.ArgumentParser(prog="bench.flood", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--names", type=int, default=32_000, help="new metric names per request")
    p.add_argument("--after", type=float, default=30.0, help="seconds of probes after it")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="dp-flood-") as tmp:
        data = Path(tmp)
        registry = sqlite_registry(data / "apps.sqlite")
        noisy = registry.create("noisy")
        probe = registry.create("probe")
        registry.close()
        server = drains.start(data)
        mem = MemorySampler(server.proc.pid)
        try:
            time.sleep(10)
            idle_kb, _ = mem.sample()
            mem.start()
            prober = Prober(server.url, probe.drain_secret, probe.api_token, 1.0)
            sending = threading.Event()
            for target in (lambda: prober.send_loop(sending), prober.poll_loop):
                threading.Thread(target=target, daemon=True).start()
            began = time.monotonic()
            codes: dict[int, int] = {}
            for r in range(args.requests):
                body, count = flood_body(r * args.names, args.names, int(time.time() * 1000))
                code = server.post(noisy.drain_secret, body, count)
                codes[code] = codes.get(code, 0) + 1
            flood_s = time.monotonic() - began
            time.sleep(args.after)
            sending.set()
            prober.done.wait(30)
            end_kb, _ = mem.sample()
            mem.stop.set()
            mem.join()
            metrics = server.text("/metrics")
        finally:
            drains.stop(server, timeout=60)
    during = [
        x.delay_s
        for x in prober.probes
        if x.delay_s is not None and x.acked_at - began <= flood_s + 5
    ]
    after = [
        x.delay_s
        for x in prober.probes
        if x.delay_s is not None and x.acked_at - began > flood_s + 5
    ]
    limited = [ln for ln in metrics.splitlines() if ln.startswith("drainpipe_series_limited")]
    print(
        f"flood: {args.requests} requests x {args.names} new names in {flood_s:.1f} s, "
        f"answers {codes}"
    )
    print(
        f"tree RSS: idle {idle_kb / 1024:.0f} MB, peak {mem.peak_rss_kb / 1024:.0f} MB, "
        f"end {end_kb / 1024:.0f} MB"
    )
    for name, xs in (("during the flood", during), ("after it", after)):
        if xs:
            print(
                f"probe freshness {name}: median {statistics.median(xs):.2f} s, "
                f"max {max(xs):.2f} s ({len(xs)} probes)"
            )
    print("limited:", "; ".join(limited) or "nothing")


if __name__ == "__main__":
    main()
