"""The one clock: fixed clocks for tests, nothing else reading the system's clocks, and the
time-dependent tests passing at another date (libfaketime shifts the system clock)."""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from drainpipe.clock import SYSTEM, FixedClock

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "drainpipe"

# Calls that read a system clock: only drainpipe/clock.py may make them.
CLOCK_READS = {
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("time", "perf_counter"),
    ("time", "perf_counter_ns"),
    ("time", "clock_gettime"),
    ("time", "clock_gettime_ns"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
}
# These read the clock only when given no time to convert: `time.gmtime()`.
CLOCK_READS_WITHOUT_ARGUMENTS = {("time", "gmtime"), ("time", "localtime"), ("time", "ctime")}


def clock_reads(source: str) -> list[str]:
    """The system-clock reads in a module's source, as 'line: module.name' (modules
    imported under another name, `import time as t`, by their own name)."""
    tree = ast.parse(source)
    real = {"time": "time", "datetime": "datetime", "date": "date"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.asname and alias.name in ("time", "datetime", "date"):
                    real[alias.asname] = alias.name
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            base = node.value
            name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", None)
            pair = (real.get(str(name), name), node.attr)
            if pair in CLOCK_READS:
                found.append(f"{node.lineno}: {pair[0]}.{pair[1]}")
        elif isinstance(node, ast.Call) and not node.args and isinstance(node.func, ast.Attribute):
            base = node.func.value
            pair = (real.get(getattr(base, "id", ""), ""), node.func.attr)
            if pair in CLOCK_READS_WITHOUT_ARGUMENTS:
                found.append(f"{node.lineno}: {pair[0]}.{pair[1]}()")
        elif isinstance(node, ast.ImportFrom) and node.module in ("time", "datetime"):
            for alias in node.names:
                if (node.module, alias.name) in CLOCK_READS | CLOCK_READS_WITHOUT_ARGUMENTS:
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
    return found


def test_a_fixed_clock_shows_what_it_was_set_to_while_intervals_still_pass() -> None:
    clock = FixedClock(1_000)
    assert clock.now_ms() == 1_000
    clock.advance(500)
    assert clock.now_ms() == 1_500
    clock.set(7)
    assert clock.now_ms() == 7
    t0 = clock.monotonic()
    threading.Event().wait(0.02)
    assert clock.monotonic() > t0
    assert clock.now_ms() == 7


def test_the_system_clock_is_the_machines() -> None:
    before = time.time_ns() // 1_000_000
    now = SYSTEM.now_ms()
    assert before <= now <= time.time_ns() // 1_000_000


@pytest.mark.parametrize(
    "source",
    [
        "import time\nx = time.time()\n",
        "import time\nx = time.monotonic()\n",
        "from datetime import datetime\nx = datetime.now()\n",
        "import datetime\nx = datetime.datetime.utcnow()\n",
        "from time import time\n",
        "import time as t\nx = t.time()\n",
        "import time\nx = time.clock_gettime(time.CLOCK_REALTIME)\n",
        "import time\nx = time.gmtime()\n",
        "import time as clock\nx = clock.localtime()\n",
    ],
)
def test_the_scan_finds_a_clock_read(source: str) -> None:
    assert clock_reads(source)


def test_the_scan_leaves_conversions_of_a_given_time_alone() -> None:
    assert clock_reads("import time\nx = time.gmtime(0)\ny = time.strftime('%Y', x)\n") == []


def test_only_the_clock_module_reads_the_system_clocks() -> None:
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "clock.py" and (found := clock_reads(path.read_text()))
    }
    assert offenders == {}, "read time through drainpipe.clock (an injected Clock) instead"


# Every test module whose code or data involves a date: settling, retention, lateness,
# future skew, the API's default window, replay and the whole pipeline.
TIME_TESTS = [
    "tests/store",
    "tests/bus/test_wal.py",
    "tests/rollup",
    "tests/ingest/test_records.py",
    "tests/ingest/test_drain.py",
    "tests/tools/test_replay.py",
    "tests/system/test_end_to_end.py",
]


@pytest.mark.timeout(600)
def test_the_time_dependent_tests_pass_at_another_date() -> None:
    """The date-touching tests again, in subprocesses whose system clock libfaketime moves
    400 days forward and back: a test that depends on today's date fails here. The two
    run at once; each waits on its databases and servers much of the time."""
    faketime = shutil.which("faketime")
    if faketime is None:
        message = "faketime is not installed (Debian: apt-get install faketime)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)
    env = {
        **os.environ,
        # Only the wall clock moves: a faked monotonic clock makes timed lock waits hang.
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        # time.sleep through a call libfaketime leaves be (see its docstring).
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "tests" / "support" / "shifted_clock"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    command = [sys.executable, "-m", "pytest", "-qx", "-p", "no:cacheprovider", *TIME_TESTS]
    deadline = time.monotonic() + 540
    runs: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}
    with contextlib.ExitStack() as files:
        try:
            for shift in ("+400d", "-400d"):
                # A file, not a pipe: neither run waits for its output to be read.
                out = files.enter_context(tempfile.TemporaryFile())
                run = subprocess.Popen(
                    [faketime, "-f", shift, *command], cwd=ROOT, env=env, stdout=out, stderr=out
                )
                runs[shift] = (run, out)
            failed = []
            for shift, (run, log) in runs.items():
                try:
                    run.wait(timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    run.kill()
                    run.wait()
                log.seek(0)
                tail = "\n".join(log.read().decode(errors="replace").splitlines()[-40:])
                # 0: tests ran and all passed (5 would be none collected, 1 a failure).
                if run.returncode != 0:
                    failed.append(f"exit {run.returncode} at {shift}:\n{tail}")
            assert not failed, "\n\n".join(failed)
        finally:
            for run, _ in runs.values():
                if run.poll() is None:
                    run.kill()
                    run.wait()
