"""The machine, per-run lines, the side-by-side table with ratios, and one JSON line."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from bench.peers.compare import Agreement

TOOLS = {
    "parse": ("drainpipe batch.build, 1 core", "500-line requests in process", "lines/s"),
    "e2e": ("drainpipe up, HTTP (defaults)", "drain POSTs, 204 = fsynced", "lines/s"),
    "mtail": ("mtail --one_shot", "the syslog file", "lines/s"),
    "influx": ("InfluxDB 1.x /write", "line protocol, WAL fsynced", "points/s"),
}
Runs = dict[str, list[dict[str, float]]]


def machine(mtail_version: str, influx_version: str) -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        "unknown",
    )
    mem_kb = next(
        int(ln.split()[1])
        for ln in Path("/proc/meminfo").read_text().splitlines()
        if ln.startswith("MemTotal:")
    )
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mtail": mtail_version,
        "influxd": influx_version,
        "drainpipe": _checkout(),
    }


def _checkout() -> str:
    """The drainpipe package measured: its directory and git commit (+dirty) if any."""
    import drainpipe

    where = Path(drainpipe.__file__).parent.parent
    out = subprocess.run(
        ["git", "-C", str(where), "describe", "--always", "--dirty", "--abbrev=12"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{where} @ {out.stdout.strip() if out.returncode == 0 else 'no git checkout'}"


def machine_text(m: dict[str, object]) -> str:
    load = " ".join(f"{x:.2f}" for x in m["load_start"])  # type: ignore[attr-defined]
    return (
        f"machine: {m['nproc']} cores, {m['cpu']}, {m['ram_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}; {m['mtail']}; {m['influxd']}; {m['date']}; load {load}\n"
        f"drainpipe measured: {m['drainpipe']}"
    )


def run_text(r: int, n: int, runs: Runs, ag: Agreement) -> str:
    cells = [f"{k} {runs[k][r]['rate']:,.0f}/s" for k in TOOLS]
    return (
        f"run {r + 1}: "
        + ", ".join(cells)
        + f"; answers {'agree' if ag.agree else 'DISAGREE'}"
        + ("" if ag.agree else f": {ag.problems[:5]}")
    )


def _median(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return statistics.median(vals) if vals else float("nan")


def summarize(runs: Runs, n: int) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for tool, rs in runs.items():
        fig: dict[str, object] = {
            "rate_median": _median([x["rate"] for x in rs]),
            "rate_runs": [x["rate"] for x in rs],
            "cpu_s_per_m_median": _median([x["cpu"] / n * 1e6 for x in rs]),
            "peak_rss_mb_median": _median([x["rss"] for x in rs]),
        }
        for extra in ("visible_s", "cpu_visible", "query_s"):
            if rs and extra in rs[0]:
                fig[f"{extra}_median"] = _median([x[extra] for x in rs])
        out[tool] = fig
    ratios: dict[str, object] = {}
    for ours in ("e2e", "parse"):
        for peer in ("mtail", "influx"):
            a, b = out[ours], out[peer]
            ratios[f"{ours}/{peer}"] = {
                key: _ratio(_number(a, f"{key}_median"), _number(b, f"{key}_median"))
                for key in ("rate", "cpu_s_per_m", "peak_rss_mb")
            }
    out["ratios"] = ratios
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def _number(fig: dict[str, object], key: str) -> float:
    """One of summarize's per-tool medians: always a number (NaN when there was none)."""
    x = fig[key]
    assert isinstance(x, int | float), (key, x)
    return x


def _num(x: float, fmt: str) -> str:
    return "n/a" if math.isnan(x) else format(x, fmt)


def table(
    f: dict[str, dict[str, object]], m: dict[str, object], args: argparse.Namespace, ag: Agreement
) -> str:
    lines = [
        f"\n{args.lines:,} router lines, median of {args.runs} run(s)",
        f"{'tool':<32} {'input':<30} {'rate':>16} {'CPU s/M lines':>14} {'peak RSS MB':>12}",
    ]
    for key, (name, what, unit) in TOOLS.items():
        x = f[key]
        lines.append(
            f"{name:<32} {what:<30} {x['rate_median']:>10,.0f} {unit:<5} "
            f"{_num(_number(x, 'cpu_s_per_m_median'), '.2f'):>14} "
            f"{_num(_number(x, 'peak_rss_mb_median'), '.0f'):>12}"
        )
    lines += ["", f"{'drainpipe / peer':<32} {'rate':>10} {'CPU s/M lines':>14} {'peak RSS':>10}"]
    names = {"e2e": "drainpipe up", "parse": "batch.build", "mtail": "mtail", "influx": "InfluxDB"}
    for pair, r in f["ratios"].items():
        assert isinstance(r, dict)  # summarize's ratios: rate, cpu_s_per_m, peak_rss_mb
        ours, peer = pair.split("/")
        lines.append(
            f"{names[ours] + ' / ' + names[peer]:<32} {_num(r['rate'], '.2f'):>10} "
            f"{_num(r['cpu_s_per_m'], '.2f'):>14} {_num(r['peak_rss_mb'], '.2f'):>10}"
        )
    e2e, inf = f["e2e"], f["influx"]
    lines += [
        "",
        f"drainpipe up: every line visible through the API {e2e['visible_s_median']:.1f} s "
        f"after the first POST (CPU until then "
        f"{_number(e2e, 'cpu_visible_median') / args.lines * 1e6:.2f} s/M lines); "
        f"InfluxDB per-app GROUP BY time(1m) queries: {inf['query_s_median']:.2f} s in all",
        f"per-minute answers ({ag.minutes} app-minutes, run 1): "
        + ("AGREE" if ag.agree else "DISAGREE")
        + f": counts equal {ag.counts_equal}, means equal {ag.means_equal}, "
        f"InfluxDB p95 = exact nearest-rank {ag.influx_p95_exact}, drainpipe p95 within "
        f"0.5 % of exact floor(0.95(n-1)) rank {ag.drainpipe_p95_within} (max error "
        f"{ag.max_dp_p95_error:.3%}), mtail counts equal {ag.mtail_counts_equal}; drainpipe "
        f"p95 within 0.5 % of InfluxDB's in {ag.p95_within_each_other} of {ag.minutes} minutes "
        f"(max gap {ag.max_p95_gap:.2%}); the two rank definitions pick different values in "
        f"{ag.ranks_differ} minutes, and in {ag.same_rank_within} of the other "
        f"{ag.minutes - ag.ranks_differ} the two tools are within 0.5 %",
    ]
    lines += [f"  {p}" for p in ag.problems[:10]]
    return "\n".join(lines)


def json_line(
    f: dict[str, dict[str, object]],
    m: dict[str, object],
    args: argparse.Namespace,
    agreements: list[Agreement],
    cmd: str,
) -> str:
    def clean(x: object) -> object:
        if isinstance(x, float):
            return None if math.isnan(x) else round(x, 4)
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    doc = {
        "bench": "peers",
        "command": cmd,
        "lines": args.lines,
        "runs": args.runs,
        "connections": args.connections,
        "per_body": args.per_body,
        "influx_batch": args.influx_batch,
        "machine": m,
        **{k: f[k] for k in (*TOOLS, "ratios")},
        "agree_all_runs": all(a.agree for a in agreements),
        "agreement_run1": agreements[0].as_dict(),
    }
    return json.dumps(clean(doc), separators=(",", ":"))
