"""Settling one hour: time and memory of merging an hour of minutes into tier rows.

Writes one hour of one-minute summaries for `--apps` apps (router with `bench.api`'s 200
requests a minute, memory and load) into a fresh SQLite store, then settles that hour
as `drainpipe up`'s upkeep does, sampling the process's RSS every 10 ms meanwhile.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.summaries import minute_summaries
from drainpipe import codec
from drainpipe.store import Store, tiers
from drainpipe.store.sqlite import SqliteStore


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


def settle_measured(store: Store) -> tuple[int, float, float, float]:
    """Settle every closed hour now, as upkeep would; (hours, seconds, RSS before, peak
    RSS during) with the RSS sampled every 10 ms."""
    before, peak, done = rss_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], rss_mb())

    sampler = threading.Thread(target=sample)
    sampler.start()
    t = time.monotonic()
    hours = store.settle(int(time.time() * 1000) + tiers.QUIET_MS)
    elapsed = time.monotonic() - t
    done.set()
    sampler.join()
    return hours, elapsed, before, max(peak[0], before)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--apps", type=int, default=1000)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "store.sqlite")
        rng = np.random.default_rng(1)
        hour = int(time.time() * 1000) // tiers.HOUR_MS * tiers.HOUR_MS - 2 * tiers.HOUR_MS
        for a in range(args.apps):
            minutes = minute_summaries(f"app{a:05d}", hour, 60, rng)
            store.write_summaries([codec.encoded(s) for s in minutes])
        hours, elapsed, before, top = settle_measured(store)
        store.close()
    print(
        f"settled {hours} hour of {args.apps} apps in {elapsed:.2f} s; RSS {before:.1f} MB "
        f"before, peak {top:.1f} MB during (+{top - before:.1f} MB)"
    )
    print(
        json.dumps(
            {
                "bench": "settle",
                "apps": args.apps,
                "seconds": round(elapsed, 3),
                "rss_before_mb": round(before, 1),
                "rss_peak_mb": round(top, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
