"""mtail (Debian's package) in one-shot mode over the router file, with router.mtail.

`mtail --one_shot` compiles the program, reads the file from start to EOF, prints its
metric store as JSON and exits. Its HTTP listener is bound to a free loopback port
(one-shot mode still starts it), its own logs go to the run's temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers.proc import free_port

PROGRAM = Path(__file__).with_name("router.mtail")


@dataclass
class Counts:
    lines: int = 0
    by_class: dict[tuple[str, str, str], int] = field(default_factory=dict)  # app, minute, class
    hist: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)  # count, sum


@dataclass
class Result:
    seconds: float
    cpu_s: float
    peak_rss_mb: float
    counts: Counts


def version() -> str:
    out = subprocess.run(["mtail", "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[0]


def available() -> bool:
    return shutil.which("mtail") is not None


def parse_output(doc: dict[str, list[dict[str, object]]]) -> Counts:
    c = Counts()
    for m in doc.get("router_lines_total", []):
        for lv in m["LabelValues"]:  # type: ignore[attr-defined]
            c.lines += int(lv["Value"]["Value"])
    for m in doc.get("router_requests_total", []):
        for lv in m["LabelValues"]:  # type: ignore[attr-defined]
            c.by_class[tuple(lv["Labels"])] = int(lv["Value"]["Value"])
    for m in doc.get("router_service_ms", []):
        for lv in m["LabelValues"]:  # type: ignore[attr-defined]
            c.hist[tuple(lv["Labels"])] = (int(lv["Value"]["Count"]), float(lv["Value"]["Sum"]))
    return c


def run(log_file: Path, workdir: Path, timeout_s: float = 900) -> Result:
    """One one-shot pass over log_file; wall time, CPU and peak RSS from wait4's rusage."""
    progs = workdir / "progs"
    progs.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROGRAM, progs / PROGRAM.name)
    logs = workdir / "mtail-logs"
    logs.mkdir(exist_ok=True)
    out_path = workdir / "mtail-out.json"
    cmd = [
        "mtail",
        "--one_shot",
        "--one_shot_format=json",
        "--logs",
        str(log_file),
        "--progs",
        str(progs),
        "--address",
        "127.0.0.1",
        "--port",
        str(free_port()),
        "--log_dir",
        str(logs),
    ]
    with open(out_path, "wb") as out, open(workdir / "mtail-err.txt", "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        watchdog = threading.Timer(timeout_s, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err_text = (workdir / "mtail-err.txt").read_text()[-2000:]
        raise RuntimeError(f"mtail exited {proc.returncode}: {err_text}")
    counts = parse_output(json.loads(out_path.read_text()))
    return Result(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, counts)
