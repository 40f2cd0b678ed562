"""Steady state: freshness (drain 204 -> visible in the API) and memory, 1,000 apps x 10 dynos.

Starts `drainpipe up` (default settings: the primary plus its HTTP worker processes) on
a fresh data directory, creates the apps, and has a child process drive the simulator's
realistic traffic at them for a fixed time, paced to the wall clock: runtime metrics
every 20 s per dyno (web and worker dynos), platform events, and router requests at
`--router-rate` lines/s spread over the apps, framed per app as Logplex does (a body
closes at 500 lines or 1 s) and POSTed over several keep-alive connections.

Meanwhile, every `--probe-every` seconds, a single-line router body goes to a separate
probe app with a service time no earlier probe had; once its 204 is in, the API
(`router.latency`, step 60) is polled every 20 ms until the probe's minute shows it (its
count and max). Freshness is the time from the 204 to that answer. The server's memory
is the sum of VmRSS (and of Pss) over its whole process tree, sampled every 0.5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.probe import PROBE_APP, PROBE_TIMEOUT_S, Prober, fresh_max_by_minute, quantile
from drainpipe.store.apps import sqlite_registry
from drainpipe.tools.simulate.framing import DrainBody, Framer, drain_token
from drainpipe.tools.simulate.generator import Generator, Workload
from drainpipe.tools.simulate.post import Poster, basic_auth, parse_url
from drainpipe.tools.simulate.progress import Progress
from tests.support import drains

SAMPLE_S = 0.5


# -- memory of the server's process tree ------------------------------------------------


def tree_pids(pid: int) -> list[int]:
    """The process and all its descendants (children of every thread, recursively)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except FileNotFoundError:
            continue
        for t in tasks:
            with contextlib.suppress(FileNotFoundError):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
    return out


def status_kb(pid: int, field: str, name: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class MemorySampler(threading.Thread):
    """Sums VmRSS and Pss over the tree every SAMPLE_S; keeps the peak and the last sample."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss", daemon=True)
        self.pid = pid
        self.stop = threading.Event()
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, rss kB, pss kB)
        self.peak_rss_kb = 0
        self.peak_by_pid: dict[int, int] = {}
        self.peak_pss_kb = 0
        self.pids_seen: set[int] = set()

    def sample(self) -> tuple[int, int]:
        pids = tree_pids(self.pid)
        self.pids_seen.update(pids)
        by_pid = {p: status_kb(p, "VmRSS") for p in pids}
        rss = sum(by_pid.values())
        pss = sum(status_kb(p, "Pss", "smaps_rollup") for p in pids)
        self.samples.append((time.monotonic(), rss, pss))
        if rss > self.peak_rss_kb:
            self.peak_rss_kb, self.peak_by_pid = rss, by_pid
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        return rss, pss

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_S):
            self.sample()


# -- the traffic: the simulator's generator, framer and poster, in a child process ----------


def traffic(
    url: str, secrets: list[str], args: dict[str, Any], out: mp.Queue[dict[str, Any]]
) -> None:
    per_type = args["dynos"] // 2
    lead_s = 2.0  # building the generator for 1,000 apps takes about a second
    start_us = int((time.time() + lead_s) * 1e6)
    base = Workload(
        start_us=start_us,
        apps=len(secrets),
        dynos=per_type,
        process_types=("web", "worker"),
        seed=args["seed"],
        app_names=tuple(f"app-{i:04d}" for i in range(len(secrets))),
    )
    workload = dataclasses.replace(base, rate=base.background_rate() + args["router_rate"])
    gen = Generator(workload)
    framer = Framer(workload.apps, f"{args['seed']}:frames")
    target = parse_url(url + "/logs")
    tokens = [drain_token(args["seed"], i) for i in range(workload.apps)]
    poster = Poster(target, [basic_auth("drain", s) for s in secrets], tokens, args["connections"])
    wall0 = time.monotonic() + (start_us / 1e6 - time.time())
    end_us = start_us + int(args["duration"] * 1e6)
    offered = {"lines": 0, "bodies": 0, "behind_max_s": 0.0}

    def due(body: DrainBody) -> float:
        return wall0 + (body.last_us - start_us) / 1e6

    def bodies() -> Iterator[DrainBody]:
        for line in itertools.takewhile(lambda x: x.t_us < end_us, gen.lines()):
            for body in framer.add(line):
                offered["lines"] += body.count
                offered["bodies"] += 1
                yield body
                # Handed to a connection by now: how far behind the simulated clock?
                behind = time.monotonic() - (wall0 + (line.t_us - start_us) / 1e6)
                offered["behind_max_s"] = max(offered["behind_max_s"], behind)
        for body in framer.flush():
            offered["lines"] += body.count
            offered["bodies"] += 1
            yield body

    out.put({"ready": True, "background_rate": workload.background_rate()})
    while time.monotonic() < wall0:
        time.sleep(0.01)
    t0 = time.monotonic()
    stats = poster.run(bodies(), due, Progress("steady", sys.stderr, live=False), 1)
    elapsed = time.monotonic() - t0
    out.put(
        {
            "elapsed_s": elapsed,
            "offered_lines": offered["lines"],
            "offered_bodies": offered["bodies"],
            "behind_max_s": offered["behind_max_s"],
            "acked_lines": stats.acked_lines,
            "acked_bodies": stats.acked_bodies,
            "acked_kinds": dict(stats.acked_kinds),
            "dropped_lines": stats.dropped_lines,
            "retries": stats.retries,
            "answers": dict(stats.answers),
        }
    )


# -- freshness probes -------------------------------------------------------------------


def run_once(args: argparse.Namespace, run: int) -> dict[str, Any]:
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="dp-steady-") as tmp:
        data = Path(tmp)
        t = time.monotonic()
        registry = sqlite_registry(data / "apps.sqlite")
        secrets = [registry.create(f"app-{i:04d}").drain_secret for i in range(args.apps)]
        probe = registry.create(PROBE_APP)
        registry.close()
        print(f"  run {run}: {args.apps + 1} apps created in {time.monotonic() - t:.1f} s")
        server = drains.start(data)
        mem = MemorySampler(server.proc.pid)
        try:
            time.sleep(1.0)
            idle_rss_kb, _ = mem.sample()
            ctx = mp.get_context("fork")  # before any thread of ours starts
            q: mp.Queue[dict[str, Any]] = ctx.Queue()
            child = ctx.Process(
                target=traffic,
                args=(server.url, secrets, {**vars(args), "duration": args.duration}, q),
                daemon=True,
            )
            child.start()
            q.get(timeout=60)
            mem.start()
            t_traffic = time.monotonic()
            prober = Prober(server.url, probe.drain_secret, probe.api_token, args.probe_every)
            sending = threading.Event()
            threads = [
                threading.Thread(target=prober.send_loop, args=(sending,), daemon=True),
                threading.Thread(target=prober.poll_loop, daemon=True),
            ]
            for th in threads:
                th.start()
            try:
                result = q.get(timeout=args.duration + 120)
            finally:
                sending.set()
            final_rss_kb, final_pss_kb = mem.sample()  # right after the traffic stops
            child.join(30)
            if child.is_alive():
                child.kill()
            prober.done.wait(PROBE_TIMEOUT_S + 10)
            mem.stop.set()
            mem.join()
        finally:
            code = drains.stop(server, timeout=60)
        log = server.log_path.read_text(errors="replace")
    errors = [
        line
        for line in log.splitlines()
        if '"level": "error"' in line or '"level": "critical"' in line or "Traceback" in line
    ]
    delays = [p.delay_s for p in prober.probes if p.delay_s is not None]
    seen = [d for d in delays if d != math.inf]
    rss_mb = [s[1] / 1024 for s in mem.samples]
    third = max(1, len(rss_mb) // 3)
    out = {
        "acked_lines_per_s": round(result["acked_lines"] / result["elapsed_s"]),
        "offered_lines_per_s": round(result["offered_lines"] / args.duration),
        "acked_bodies_per_s": round(result["acked_bodies"] / result["elapsed_s"]),
        "traffic_s": round(result["elapsed_s"], 1),
        "behind_max_s": round(result["behind_max_s"], 2),
        "acked_kinds": result["acked_kinds"],
        "non_2xx": result["answers"],
        "dropped_lines": result["dropped_lines"],
        "probes": len(prober.probes),
        "probe_non_204": prober.bad,
        "probes_not_visible_in_30s": len(delays) - len(seen),
        "poll_errors": prober.poll_errors,
        "fresh_p50_s": round(quantile(seen, 0.5), 3) if seen else None,
        "fresh_p95_s": round(quantile(seen, 0.95), 3) if seen else None,
        "fresh_max_s": round(max(seen), 3) if seen else None,
        "idle_rss_mb": round(idle_rss_kb / 1024, 1),
        "peak_rss_mb": round(mem.peak_rss_kb / 1024, 1),
        "peak_rss_by_process_mb": [round(v / 1024, 1) for v in mem.peak_by_pid.values()],
        "final_rss_mb": round(final_rss_kb / 1024, 1),
        "peak_pss_mb": round(mem.peak_pss_kb / 1024, 1),
        "final_pss_mb": round(final_pss_kb / 1024, 1),
        # By the probes' minute (UTC), to see what settling an hour does to freshness.
        "fresh_max_s_by_minute": fresh_max_by_minute(prober.probes),
        "rss_mb_each_minute": [
            round(rss / 1024, 1) for t, rss, _ in mem.samples if (t - t_traffic) % 60 < SAMPLE_S
        ],
        "rss_mean_mb_by_third": [
            round(statistics.fmean(rss_mb[i * third : (i + 1) * third] or [0]), 1) for i in range(3)
        ],
        "server_processes_seen": len(mem.pids_seen),
        "server_error_log_lines": len(errors),
        "server_exit_code": code,
        "load1_start": round(load0, 2),
        "load1_end": round(os.getloadavg()[0], 2),
    }
    if errors:
        print("  server errors (first 3):\n    " + "\n    ".join(errors[:3]), file=sys.stderr)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--apps", type=int, default=1000)
    p.add_argument("--dynos", type=int, default=10, help="per app: half web, half worker")
    p.add_argument("--router-rate", type=float, default=5000.0, help="router lines/s, all apps")
    p.add_argument("--duration", type=float, help="seconds of traffic per run (120; --quick 30)")
    p.add_argument("--connections", type=int, default=64, help="drain connections")
    p.add_argument("--probe-every", type=float, default=1.0, help="seconds between probes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=None, help="default 3 (1 with --quick)")
    p.add_argument("--quick", action="store_true", help="30 s of traffic, 1 run")
    args = p.parse_args()
    if args.duration is None:
        args.duration = 30.0 if args.quick else 120.0
    runs = args.runs or (1 if args.quick else 3)
    if args.dynos < 2 or args.dynos % 2:
        p.error("--dynos must be even (half web, half worker)")
    results = []
    for r in range(runs):
        res = run_once(args, r + 1)
        results.append(res)
        print(
            f"  run {r + 1}: {res['acked_lines_per_s']:,} lines/s acknowledged "
            f"(offered {res['offered_lines_per_s']:,}, {res['acked_bodies_per_s']:,} bodies/s, "
            f"at most {res['behind_max_s']} s behind, non-2xx {res['non_2xx'] or 0}); "
            f"freshness p50 {res['fresh_p50_s']} s, "
            f"p95 {res['fresh_p95_s']} s, max {res['fresh_max_s']} s over {res['probes']} "
            f"probes; RSS peak {res['peak_rss_mb']} MB, final {res['final_rss_mb']} MB "
            f"(PSS peak {res['peak_pss_mb']} MB)",
            flush=True,
        )

    def med(key: str) -> float | None:
        xs = [r[key] for r in results if r[key] is not None]
        return statistics.median(xs) if xs else None

    keys = (
        "acked_lines_per_s",
        "fresh_p50_s",
        "fresh_p95_s",
        "fresh_max_s",
        "peak_rss_mb",
        "final_rss_mb",
        "peak_pss_mb",
    )
    print(
        json.dumps(
            {
                "bench": "steady",
                **{f"{k}_median": med(k) for k in keys},
                "non_2xx_total": sum(sum(r["non_2xx"].values()) for r in results),
                "runs": results,
                "apps": args.apps,
                "dynos_per_app": args.dynos,
                "router_rate": args.router_rate,
                "duration_s": args.duration,
                "connections": args.connections,
            }
        )
    )


if __name__ == "__main__":
    main()
