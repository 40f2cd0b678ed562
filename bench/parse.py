"""Parse throughput: lines per second on one core through records.build, per kind of line.

Realistic 500-line drain bodies of one kind each: (a) router lines (mostly 2xx/3xx with
some H12/H27 errors, ten web dynos, the newer router's protocol/tls fields), (b)
log-runtime-metrics lines (memory and load samples), (c) platform event lines of six
everyday texts, (d) event lines whose texts rarely repeat (exit statuses, release
versions, users), which parse.events' cache of texts does not help. Each figure is the
median of 5 runs; the per-line reference (records.build_reference: parse_message line by
line, which shares parse_event and its cache) runs alongside, and the ratio is
bulk/reference.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from drainpipe.ingest import records

T0_MS = 1_795_255_200_000
MAX_FUTURE_MS = 300_000
Build = Callable[[str, list[bytes], int, int], records.Parsed]


def _ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"


def router_line(rng: random.Random, ms: int) -> str:
    status, head = rng.choice([(200, "at=info")] * 30 + [(304, "at=info"), (404, "at=info")])
    service = int(rng.lognormvariate(3.5, 1.0))
    if rng.random() < 0.01:
        status, service = 503, 30000
        head = 'at=error code=H12 desc="Request timeout"'
    elif rng.random() < 0.01:
        status, head = 499, 'at=warning code=H27 desc="Client Request Interrupted"'
    path = rng.choice(['"/"', '"/cart?item=42"', '"/api/v1/orders/9d8c2bc4"', '"/search?q=red"'])
    tail = rng.choice(["protocol=https", "protocol=http2.0 tls=true tls_version=tls1.3"])
    return (
        f"<158>1 {_ts(ms)} host heroku router - {head} method=GET path={path} "
        f"host=shop.example.com request_id=8601b555-6a54-4f5c-9c7b-{rng.getrandbits(48):012x} "
        f'fwd="203.0.113.{rng.randint(1, 254)}" dyno=web.{rng.randint(1, 10)} '
        f"connect={rng.randint(0, 2)}ms service={service}ms status={status} "
        f"bytes={rng.randint(0, 40000)} {tail}\n"
    )


def runtime_line(rng: random.Random, ms: int) -> str:
    source = f"web.{rng.randint(1, 10)}"
    head = f"<45>1 {_ts(ms)} host heroku {source} - source={source} dyno=heroku.1234.8f6b5b7e "
    if rng.random() < 0.5:
        return head + (
            f"sample#load_avg_1m={rng.uniform(0, 4):.2f} sample#load_avg_5m=1.06 "
            "sample#load_avg_15m=0.99\n"
        )
    return head + (
        f"sample#memory_total={rng.uniform(100, 500):.2f}MB sample#memory_rss=212.22MB "
        "sample#memory_cache=0.00MB sample#memory_swap=0.00MB "
        "sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages "
        "sample#memory_quota=512.00MB\n"
    )


def event_line(rng: random.Random, ms: int) -> str:
    app, procid, text = rng.choice(
        [
            ("heroku", "web.1", "State changed from starting to up"),
            ("heroku", "web.2", "Stopping all processes with SIGTERM"),
            ("heroku", "web.3", "Process exited with status 137"),
            ("heroku", "web.1", "Error R14 (Memory quota exceeded)"),
            ("app", "api", "Release v16 created by user a@example.com"),
            ("app", "api", "Scaled to web@2:Standard-1X worker@1:Standard-1X by user a@b.c"),
        ]
    )
    return f"<190>1 {_ts(ms)} host {app} {procid} - {text}\n"


def varied_event_line(rng: random.Random, ms: int) -> str:
    n, user = rng.getrandbits(32), f"u{rng.getrandbits(24)}@example.com"
    app, procid, text = rng.choice(
        [
            ("heroku", f"web.{n % 10 + 1}", f"Process exited with status {n % 256}"),
            ("heroku", f"web.{n % 10 + 1}", f"Starting process with command `bin/web {n}`"),
            ("app", "api", f"Release v{n} created by user {user}"),
            ("app", "api", f"Deploy {n:08x} by user {user}"),
            ("app", "api", f"Scaled to web@{n % 9 + 1}:Standard-1X by user {user}"),
            ("heroku", "logplex", f"Error L10 (output buffer overflow): {n} messages dropped"),
        ]
    )
    return f"<190>1 {_ts(ms)} host {app} {procid} - {text}\n"


def bodies(make: Callable[[random.Random, int], str], count: int, lines: int) -> list[list[bytes]]:
    rng = random.Random(1)
    out = []
    for b in range(count):
        start = T0_MS + b * 2_000
        out.append([make(rng, start + i * 4).encode() for i in range(lines)])
    return out


def lines_per_s(build: Build, frames: list[list[bytes]], now_ms: int) -> float:
    started = time.perf_counter()
    for body in frames:
        build("app1", body, now_ms, MAX_FUTURE_MS)
    return sum(map(len, frames)) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bodies", type=int, default=40, help="bodies per run")
    parser.add_argument("--lines", type=int, default=500, help="lines per body")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    now_ms = T0_MS + args.bodies * 2_000 + 60_000
    print(f"{'kind':<8} {'bulk lines/s':>14} {'reference lines/s':>18} {'ratio':>6}")
    kinds: tuple[tuple[str, Callable[[random.Random, int], str]], ...] = (
        ("router", router_line),
        ("runtime", runtime_line),
        ("event", event_line),
        ("event-v", varied_event_line),
    )
    for kind, make in kinds:
        frames = bodies(make, args.bodies, args.lines)
        fast = records.build("app1", frames[0], now_ms, MAX_FUTURE_MS)
        assert fast == records.build_reference("app1", frames[0], now_ms, MAX_FUTURE_MS)
        bulk, reference = [], []
        for _ in range(args.runs):  # interleaved, so both see the same machine
            bulk.append(lines_per_s(records.build, frames, now_ms))
            reference.append(lines_per_s(records.build_reference, frames, now_ms))
        b, r = statistics.median(bulk), statistics.median(reference)
        print(f"{kind:<8} {b:>14,.0f} {r:>18,.0f} {b / r:>6.2f}")


if __name__ == "__main__":
    main()
