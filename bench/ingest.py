"""Drain ingest end to end: acknowledged lines/s and server CPU per line, over HTTP.

Starts `drainpipe up` on a fresh data directory, creates an app, and has several client
processes POST 500-line router bodies (Logplex framing and headers) over keep-alive
connections for a fixed time. Only 204 answers count: each one means the lines are
fsynced in the embedded log. Server CPU comes from /proc for the server's process tree.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests import drains

CLK_TCK = os.sysconf("SC_CLK_TCK")


def router_bodies(
    lines_total: int, per_body: int, apps: int, seed: int = 5
) -> list[tuple[int, bytes]]:
    """(app index, body) pairs: realistic router lines, a few apps, times near now."""
    rng = random.Random(seed)
    now = int(time.time() * 1000) - 60_000
    bodies = []
    for b in range(lines_total // per_body):
        app = b % apps
        lines = []
        for _ in range(per_body):
            ms = now + rng.randrange(0, 60_000)
            status = rng.choice((200, 200, 200, 200, 304, 404, 500))
            lines.append(
                drains.router(
                    ms,
                    max(1, int(rng.lognormvariate(3.5, 1.0))),
                    status,
                    dyno=f"web.{rng.randrange(1, 5)}",
                )
            )
        bodies.append((app, drains.body(lines)))
    return bodies


def client(
    url: str,
    secrets: list[str],
    bodies: list[tuple[int, bytes]],
    per_body: int,
    seconds: float,
    out: mp.Queue[tuple[int, int]],
) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    auth = [("Basic " + base64.b64encode(f"d:{s}".encode()).decode()) for s in secrets]
    ok = bad = 0
    i = random.randrange(len(bodies))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app, body = bodies[i % len(bodies)]
        i += 1
        conn.request(
            "POST",
            "/logs",
            body=body,
            headers={
                "Content-Type": "application/logplex-1",
                "Logplex-Msg-Count": str(per_body),
                "Authorization": auth[app],
                "User-Agent": "Logplex/v123",
            },
        )
        resp = conn.getresponse()
        resp.read()
        if resp.status == 204:
            ok += 1
        else:
            bad += 1
    out.put((ok, bad))


def tree_cpu_s(pid: int) -> float:
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def run_once(args: argparse.Namespace, bodies: list[tuple[int, bytes]]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        secrets = [drains.create_app(data, f"app{i}")["drain_secret"] for i in range(args.apps)]
        server = drains.start(data, None, *args.server_args)
        try:
            q: mp.Queue[tuple[int, int]] = mp.Queue()
            procs = [
                mp.Process(
                    target=client,
                    args=(server.url, secrets, bodies, args.per_body, args.seconds, q),
                )
                for _ in range(args.connections)
            ]
            cpu0 = tree_cpu_s(server.proc.pid)
            t0 = time.monotonic()
            for p in procs:
                p.start()
            results = [q.get(timeout=args.seconds + 60) for _ in procs]
            elapsed = time.monotonic() - t0
            cpu = tree_cpu_s(server.proc.pid) - cpu0
            for p in procs:
                p.join()
        finally:
            drains.stop(server)
    ok = sum(r[0] for r in results)
    if any(r[1] for r in results):
        print(f"  non-204 answers: {sum(r[1] for r in results)}", file=sys.stderr)
    lines = ok * args.per_body
    return lines / elapsed, cpu / max(lines, 1) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lines", type=int, default=1_000_000, help="distinct lines in the drain file")
    p.add_argument("--per-body", type=int, default=500)
    p.add_argument("--apps", type=int, default=4)
    p.add_argument("--connections", type=int, default=8, help="concurrent drain connections")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--server-args", nargs="*", default=[])
    args = p.parse_args()
    bodies = router_bodies(args.lines, args.per_body, args.apps)
    rates, cpus = [], []
    for r in range(args.runs):
        rate, cpu = run_once(args, bodies)
        rates.append(rate)
        cpus.append(cpu)
        print(f"  run {r + 1}: {rate:,.0f} lines/s acknowledged, {cpu:.2f} us server CPU per line")
    print(
        json.dumps(
            {
                "bench": "ingest",
                "lines_per_s_median": round(statistics.median(rates)),
                "server_cpu_us_per_line_median": round(statistics.median(cpus), 3),
                "runs": [round(x) for x in rates],
                "connections": args.connections,
                "per_body": args.per_body,
            }
        )
    )


if __name__ == "__main__":
    main()
