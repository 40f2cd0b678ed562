"""drainpipe against its peers, in one run, on one generated file of router lines.

    .venv/bin/python -m bench.peers            # 1,000,000 lines, median of 5 runs
    .venv/bin/python -m bench.peers --quick    # 100,000 lines, 1 run

Tools (runs interleaved, so each run of each tool sees the same machine):
- drainpipe parse+batch: `batch.build` over every 500-line request, pinned to one core;
- drainpipe end to end: `drainpipe up` (default HTTP worker processes) on a fresh data
  directory, every drain body POSTed once over --connections keep-alive connections,
  lines/s from the first POST to the last 204 (204 = fsynced); then the API's per-minute
  answers once every line is visible;
- mtail (Debian) `--one_shot` over the file with bench/peers/router.mtail: per-minute
  requests by app and status class and a histogram of `service` by app and minute;
- InfluxDB 1.x (Debian) `influxd` on loopback: the same lines as points via /write in
  batches of --influx-batch over --connections connections, then per app
  count/mean/percentile(95) GROUP BY time(1m).
Every answer is checked against the exact per-minute values (bench/peers/compare.py).
Load goes to 127.0.0.1 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.peers import compare, data, influx, mtail, proc, report
from bench.peers import drainpipe_side as dps


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.peers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--minutes", type=int, default=30, help="minutes the lines span")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="100,000 lines, 1 run")
    p.add_argument("--connections", type=int, default=4, help="HTTP connections per tool")
    p.add_argument("--per-body", type=int, default=500, help="lines per drain request")
    p.add_argument("--influx-batch", type=int, default=5000, help="points per /write")
    args = p.parse_args()
    if args.quick:
        args.lines, args.runs = 100_000, 1
    for name, ok in (("mtail", mtail.available()), ("influxd", influx.available())):
        if not ok:
            raise SystemExit(f"{name} is not installed: apt-get install -y mtail influxdb")

    machine = report.machine(mtail.version(), influx.version())
    machine["load_start"] = os.getloadavg()
    print(report.machine_text(machine), flush=True)
    t = time.perf_counter()
    ds = data.generate(args.lines, args.minutes)
    n = len(ds.lines)
    frames = data.frame_lists(ds, args.per_body)
    bodies = dps.http_bodies(frames)
    batches = data.line_protocol(ds, args.influx_batch)
    truth = data.truth(ds)
    print(
        f"data: {n:,} router lines, {len(data.APPS)} apps, {args.minutes} minutes from "
        f"{data.iso(ds.start_ms)}, {len(bodies)} drain bodies, {len(batches)} /write batches "
        f"({time.perf_counter() - t:.0f} s to generate)",
        flush=True,
    )
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in report.TOOLS}
    agreements: list[compare.Agreement] = []
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        work = Path(tmp)
        log_file = work / "router.log"
        data.write_file(ds, log_file)
        for r in range(args.runs):
            secs, cpu, routed = dps.parse_on_one_core(frames, ds.end_ms + 60_000)
            assert routed == n, f"batch.build read {routed} of {n} router lines"
            runs["parse"].append({"rate": n / secs, "cpu": cpu, "rss": float("nan")})

            e2e = dps.end_to_end(ds, bodies, args.connections)
            print(
                f"  drainpipe up: {e2e.acked_lines:,} of {n:,} lines acked, {e2e.non_204} non-204, "
                f"lines per connection {e2e.per_client}",
                flush=True,
            )
            runs["e2e"].append(
                {
                    "rate": e2e.acked_lines / e2e.ack_seconds,
                    "cpu": e2e.cpu_s_ack,
                    "rss": e2e.peak_rss_mb,
                    "visible_s": e2e.visible_seconds,
                    "cpu_visible": e2e.cpu_s_visible,
                }
            )

            mt = mtail.run(log_file, work / f"mtail-{r}")
            assert mt.counts.lines == n, f"mtail counted {mt.counts.lines} of {n} lines"
            runs["mtail"].append({"rate": n / mt.seconds, "cpu": mt.cpu_s, "rss": mt.peak_rss_mb})

            rows, influx_run = _influx(work / f"influx-{r}", ds, batches, args.connections)
            runs["influx"].append(influx_run)
            counted = sum(row.count for app_rows in rows.values() for row in app_rows.values())
            assert counted == n, f"InfluxDB counted {counted} of {n} points"

            ag = compare.compare(truth, e2e.answers, rows, mt.counts)
            agreements.append(ag)
            print(report.run_text(r, n, runs, ag), flush=True)
    machine["load_end"] = os.getloadavg()
    figures = report.summarize(runs, n)
    cmd = "python -m bench.peers" + (" --quick" if args.quick else "")
    print(report.table(figures, machine, args, agreements[0]))
    print(report.json_line(figures, machine, args, agreements, cmd))


def _influx(
    workdir: Path, ds: data.Dataset, batches: list[bytes], connections: int
) -> tuple[dict[str, dict[int, influx.MinuteRow]], dict[str, float]]:
    db = influx.Influxd(workdir)
    try:
        pid = db.proc.pid
        cpu0, t0 = proc.cpu_s(pid), time.perf_counter()
        acked = db.write(batches, connections)
        write_s, cpu = time.perf_counter() - t0, proc.cpu_s(pid) - cpu0
        t0 = time.perf_counter()
        rows = {app: db.per_minute(app, ds.start_ms, ds.end_ms) for app in data.APPS}
        query_s = time.perf_counter() - t0
        rss = proc.peak_rss_mb(pid)
    finally:
        db.stop()
    return rows, {"rate": acked / write_s, "cpu": cpu, "rss": rss, "query_s": query_s}


if __name__ == "__main__":
    main()
