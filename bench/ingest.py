"""Drain ingest end to end: acknowledged lines/s and server CPU per line, over HTTP.

Starts `drainpipe up` on a fresh data directory, creates an app, and has several client
processes POST 500-line router bodies (Logplex framing and headers) over keep-alive
connections for a fixed time. Only 204 answers count: each one means the lines are
fsynced in the embedded log. Server CPU comes from /proc for the server's process tree.
`--gzip` sends the bodies gzip-compressed, as log-shuttle's -gzip does.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.drain_client import DrainClient, logplex_request
from tests.support import drains

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
    url: str, requests: list[bytes], seconds: float, out: mp.Queue[tuple[int, int, float]]
) -> None:
    """POST prebuilt requests round the list from a random start until `seconds` pass;
    puts (204s, other answers, this process's CPU seconds)."""
    cpu0 = time.process_time()
    conn = DrainClient(url)
    ok = bad = 0
    i = random.randrange(len(requests))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = conn.send(requests[i % len(requests)])
        i += 1
        if status == 204:
            ok += 1
        else:
            bad += 1
    conn.close()
    out.put((ok, bad, time.process_time() - cpu0))


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


def run_once(
    args: argparse.Namespace, bodies: list[tuple[int, bytes]]
) -> tuple[float, float, float]:
    """Acknowledged lines/s, and server and client CPU us per line, of one run."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        secrets = [drains.create_app(data, f"app{i}")["drain_secret"] for i in range(args.apps)]
        server = drains.start(data, None, *args.server_args)
        try:
            host = server.url.removeprefix("http://")
            auth = [("Basic " + base64.b64encode(f"d:{s}".encode()).decode()) for s in secrets]
            requests = [
                logplex_request(host, body, args.per_body, auth[app], gzipped=args.gzip)
                for app, body in bodies
            ]
            q: mp.Queue[tuple[int, int, float]] = mp.Queue()
            procs = [
                mp.Process(target=client, args=(server.url, requests, args.seconds, q))
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
    client_cpu = sum(r[2] for r in results)
    return lines / elapsed, cpu / max(lines, 1) * 1e6, client_cpu / max(lines, 1) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lines", type=int, default=1_000_000, help="distinct lines in the drain file")
    p.add_argument("--per-body", type=int, default=500)
    p.add_argument("--apps", type=int, default=4)
    p.add_argument("--connections", type=int, default=8, help="concurrent drain connections")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--server-args", nargs="*", default=[])
    p.add_argument("--gzip", action="store_true", help="gzip bodies, as log-shuttle -gzip does")
    args = p.parse_args()
    bodies = router_bodies(args.lines, args.per_body, args.apps)
    rates, cpus, client_cpus = [], [], []
    for r in range(args.runs):
        rate, cpu, client_cpu = run_once(args, bodies)
        rates.append(rate)
        cpus.append(cpu)
        client_cpus.append(client_cpu)
        print(
            f"  run {r + 1}: {rate:,.0f} lines/s acknowledged, CPU per line: "
            f"{cpu:.2f} us server, {client_cpu:.2f} us clients"
        )
    print(
        json.dumps(
            {
                "bench": "ingest",
                "lines_per_s_median": round(statistics.median(rates)),
                "server_cpu_us_per_line_median": round(statistics.median(cpus), 3),
                "client_cpu_us_per_line_median": round(statistics.median(client_cpus), 3),
                "runs": [round(x) for x in rates],
                "connections": args.connections,
                "per_body": args.per_body,
                "gzip": args.gzip,
            }
        )
    )


if __name__ == "__main__":
    main()
