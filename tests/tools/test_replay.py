"""drainpipe replay: three file formats into a fresh data dir, exact per-minute counts out."""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from drainpipe import cli
from drainpipe.ingest.parse import parse_message
from drainpipe.model import DynoLoad, DynoMemory, PlatformEvent, RouterRequest
from drainpipe.store.apps import sqlite_registry
from drainpipe.store.sqlite import SqliteStore
from drainpipe.tools.replay import heroku_to_syslog
from drainpipe.tools.simulate import Framer, Generator, SimLine, Workload
from drainpipe.tools.simulate.framing import drain_token, record_line
from tests.support import drains

MIN_MS = 60_000
DAY_MS = 86_400_000
FAMILY = {RouterRequest: "router", DynoMemory: "dyno.memory", DynoLoad: "dyno.load"}


def traffic(n: int = 4000) -> tuple[list[SimLine], int]:
    """n simulated lines of one app, starting 30 minutes ago; and that start in ms."""
    start_ms = int(time.time() * 1000) - 30 * MIN_MS
    workload = Workload(start_us=start_ms * 1000, rate=20, seed=4, event_interval_s=30)
    return list(itertools.islice(Generator(workload).lines(), n)), start_ms


def as_heroku_logs(line: str) -> str:
    """`<158>1 TS host heroku router - msg` as `heroku logs` prints it: `TS heroku[router]: msg`."""
    m = re.fullmatch(r"<\d+>1 (\S+) host (\S+) (\S+) - (.*\n)", line, re.DOTALL)
    assert m is not None
    return f"{m[1]} {m[2]}[{m[3]}]: {m[4]}"


def write(path: Path, kind: str, lines: list[SimLine]) -> list[str]:
    """Write lines as drain bodies, syslog lines or `heroku logs` output; their texts."""
    if kind == "drain":
        framer = Framer(1, "frames", 200)
        bodies = [b for line in lines for b in framer.add(line)] + framer.flush()
        token = drain_token(1, 0)
        path.write_bytes(b"".join(record_line(b, "sim-1", token) for b in bodies))
    elif kind == "syslog":
        path.write_text("".join(x.text for x in lines))
    else:
        path.write_text("".join(as_heroku_logs(x.text) for x in lines))
    return [x.text for x in lines]


Counts = Counter[tuple[str, str, int, str]]  # (family, process type, minute, "n" | "2xx" | "H12")


def expected_counts(texts: list[str]) -> tuple[Counts, set[tuple[int, str]]]:
    """Per-minute measurements, status classes and H codes, and events, parsed line by line."""
    counts: Counts = Counter()
    events = set()
    for text in texts:
        rec = parse_message(text.encode())
        if isinstance(rec, PlatformEvent):
            events.add((rec.ts_ms, rec.text))
        elif isinstance(rec, RouterRequest | DynoMemory | DynoLoad):
            key = (FAMILY[type(rec)], rec.process_type, rec.ts_ms - rec.ts_ms % MIN_MS)
            counts[(*key, "n")] += 1
            if isinstance(rec, RouterRequest):
                counts[(*key, f"{rec.status // 100}xx")] += 1
                if rec.code:
                    counts[(*key, rec.code)] += 1
    return counts, events


def stored_counts(data_dir: Path, owner: str, start_ms: int) -> tuple[Counts, set[tuple[int, str]]]:
    store = SqliteStore(data_dir / "metrics.sqlite")
    try:
        counts: Counts = Counter()
        for family in FAMILY.values():
            for s in store.read_summaries(owner, family, start_ms - DAY_MS, start_ms + DAY_MS):
                counts[(family, s.process_type, s.start_ms, "n")] += s.n
                for label, n in s.counts.items():
                    counts[(family, s.process_type, s.start_ms, label)] += n
        events = {
            (e.ts_ms, e.text)
            for e in store.read_events(owner, start_ms - DAY_MS, start_ms + DAY_MS)
        }
        return counts, events
    finally:
        store.close()


def new_app(data_dir: Path, name: str = "shop") -> str:
    registry = sqlite_registry(data_dir / "apps.sqlite")
    try:
        return registry.create(name).app.id
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("kind", "detected"),
    [
        ("drain", "drain bodies (JSON lines"),  # what `drainpipe simulate --out` writes
        ("syslog", "syslog lines"),  # one RFC 5424 message per line, as framed by Logplex
        ("heroku", "`heroku logs` output"),  # TS source[proc]: msg
    ],
)
def test_each_format_replays_into_a_fresh_data_dir_with_exact_per_minute_counts(
    tmp_path: Path, kind: str, detected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines, start_ms = traffic()
    owner = new_app(tmp_path / "data")
    src = tmp_path / f"in.{kind}"
    texts = write(src, kind, lines)
    argv = ["replay", str(src), "--app", "shop", "--data-dir", str(tmp_path / "data")]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert f"{src}: {detected}" in err
    assert f"replay: {len(texts):,} lines from 1 file" in err
    assert "skipped: none" in err and "late-dropped by the rollup: none" in err
    want_counts, want_events = expected_counts(texts)
    assert {f for f, _, _, _ in want_counts} == set(FAMILY.values()) and want_events
    assert len({m for _, _, m, _ in want_counts}) >= 3  # several minutes
    assert stored_counts(tmp_path / "data", owner, start_ms) == (want_counts, want_events)


def test_a_drain_file_replayed_twice_is_counted_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines, start_ms = traffic(1500)
    owner = new_app(tmp_path / "data")
    src = tmp_path / "in.drain"
    texts = write(src, "drain", lines)
    argv = ["replay", str(src), "--app", "shop", "--data-dir", str(tmp_path / "data")]
    assert cli.main(argv) == 0
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert f"skipped: duplicate_frame {len(texts):,}" in err
    assert stored_counts(tmp_path / "data", owner, start_ms) == expected_counts(texts)


def test_heroku_logs_lines_become_syslog_and_unreadable_lines_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines, start_ms = traffic(600)
    texts = [x.text for x in lines]
    owner = new_app(tmp_path / "data")
    src = tmp_path / "heroku.log"
    odd = [
        "\n",  # blank: not a line
        "=== this is not a log line\n",
        f"{drains.ts(start_ms + 1000)} app[web.1]: Completed 200 OK in 12ms\n",  # app output
    ]
    src.write_text("".join(as_heroku_logs(t) for t in texts) + "".join(odd))
    argv = ["replay", str(src), "--app", "shop", "--data-dir", str(tmp_path / "data")]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert f"replay: {len(texts) + 2:,} lines" in err
    assert "app output without metrics: 1" in err and "skipped: heroku_logs_line 1" in err
    assert stored_counts(tmp_path / "data", owner, start_ms) == expected_counts(texts)


@pytest.mark.parametrize(
    ("line", "syslog"),
    [
        (  # the router, with a colour code as `heroku logs` prints on a terminal
            b"2026-11-21T10:00:00.123456+00:00 \x1b[32mheroku[router]:\x1b[0m at=info status=200\n",
            b"<158>1 2026-11-21T10:00:00.123456+00:00 host heroku router - at=info status=200\n",
        ),
        (  # a dyno's runtime metrics
            b"2026-11-21T10:00:00+00:00 heroku[web.1]: source=web.1 sample#load_avg_1m=0.5\n",
            b"<45>1 2026-11-21T10:00:00+00:00 host heroku web.1 - "
            b"source=web.1 sample#load_avg_1m=0.5\n",
        ),
        (  # the platform API
            b"2026-11-21T10:00:00Z app[api]: Release v16 created by user a@example.com\r\n",
            b"<190>1 2026-11-21T10:00:00Z host app api - "
            b"Release v16 created by user a@example.com\n",
        ),
        (b"2026-11-21T10:00:00Z app[web.1]:\n", b"<190>1 2026-11-21T10:00:00Z host app web.1 - \n"),
        (b"Nov 21 10:00:00 host app: not heroku logs\n", None),  # BSD syslog: not this format
    ],
)
def test_heroku_logs_lines_convert_to_syslog(line: bytes, syslog: bytes | None) -> None:
    assert heroku_to_syslog(line) == syslog


def test_replay_refuses_while_drainpipe_up_runs_on_the_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines, start_ms = traffic(800)
    app = drains.create_app(tmp_path, "shop")
    src = tmp_path / "in.log"
    texts = write(src, "syslog", lines)
    argv = ["replay", str(src), "--app", "shop", "--data-dir", str(tmp_path)]
    assert cli.main(argv) == 0  # replayed before the server starts: the API shows it
    server = drains.start(tmp_path, None, "--workers", "0")  # the primary alone starts fastest
    try:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "in use by another drainpipe process" in err and "stop that `drainpipe up`" in err
        want: Counter[str] = Counter()
        for (family, _, minute, label), n in expected_counts(texts)[0].items():
            if family == "router" and label == "n":
                want[time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minute / 1000))] += n
        lo = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_ms / 1000 - 600))
        code, body = server.get(
            f"/api/v1/apps/shop/metrics/router.status?start={lo}", app["api_token"]
        )
        assert code == 200 and isinstance(body, dict)
        assert {p["t"]: p["total"] for s in body["series"] for p in s["points"]} == want
    finally:
        assert drains.stop(server) == 0, server.log_path.read_text()[-3000:]


def test_unknown_formats_and_apps_get_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new_app(tmp_path / "data")
    junk = tmp_path / "junk.txt"
    junk.write_text("hello world\n")
    assert (
        cli.main(["replay", str(junk), "--app", "shop", "--data-dir", str(tmp_path / "data")]) == 2
    )
    assert "neither a drain body" in capsys.readouterr().err
    good = tmp_path / "in.log"
    write(good, "syslog", traffic(10)[0])
    assert (
        cli.main(["replay", str(good), "--app", "nope", "--data-dir", str(tmp_path / "data")]) == 2
    )
    assert "no app named 'nope'" in capsys.readouterr().err
    assert cli.main(["replay", str(good), "--app", "shop", "--data-dir", str(tmp_path / "x")]) == 2
    assert "drainpipe apps create shop" in capsys.readouterr().err


def test_in_order_heroku_logs_with_mixed_custom_metrics_are_all_used_and_none_late(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`heroku logs` of app lines a minute apart over half an hour, each feeding two or
    three metrics: the report counts them as used, and nothing is late."""
    start_ms = int(time.time() * 1000) // MIN_MS * MIN_MS - 40 * MIN_MS
    texts = ["count#orders=1 measure#db.query=5ms", "sample#depth=3 count#orders=2"]
    src = tmp_path / "app.log"
    src.write_text(
        "".join(
            f"{drains.ts(start_ms + m * MIN_MS)} app[web.1]: {texts[m % 2]}\n" for m in range(30)
        )
    )
    owner = new_app(tmp_path / "data")
    argv = ["replay", str(src), "--app", "shop", "--data-dir", str(tmp_path / "data")]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "used: custom 30;" in err and "late-dropped by the rollup: none" in err
    store = SqliteStore(tmp_path / "data" / "metrics.sqlite")
    try:
        end = start_ms + 31 * MIN_MS
        orders = store.read_summaries(owner, "custom.orders", start_ms, end)
        queries = store.read_summaries(owner, "custom.db.query", start_ms, end)
        assert sum(s.stats["count"].sum for s in orders) == 15 * 1 + 15 * 2
        assert sum(s.stats["measure"].count for s in queries) == 15
    finally:
        store.close()
