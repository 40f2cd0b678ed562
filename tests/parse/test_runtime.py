"""log-runtime-metrics lines: memory and load samples, units, and what is not one."""

from __future__ import annotations

import pytest

from drainpipe.model import DynoLoad, DynoMemory, Skipped
from drainpipe.parse import parse_runtime

T = 1_795_255_200_000
DYNO = "dyno=heroku.12345.8f6b5b7e-54c6-4b8c-9b1e-2c1f2a6e3f10"


def memory(
    total: float | None = None,
    rss: float | None = None,
    cache: float | None = None,
    swap: float | None = None,
    pgpgin: float | None = None,
    pgpgout: float | None = None,
    quota: float | None = None,
    process_type: str = "web",
    source: str = "web.1",
) -> DynoMemory:
    return DynoMemory(T, process_type, source, total, rss, cache, swap, pgpgin, pgpgout, quota)


@pytest.mark.parametrize(
    ("procid", "text", "expected"),
    [
        # the load-average line as Heroku logs it
        (
            "web.1",
            f"source=web.1 {DYNO} sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 "
            "sample#load_avg_15m=0.99",
            DynoLoad(T, "web", "web.1", 2.46, 1.06, 0.99),
        ),
        # the memory line as Heroku logs it: MB sizes and page counts
        (
            "web.1",
            f"source=web.1 {DYNO} sample#memory_total=21.00MB sample#memory_rss=21.22MB "
            "sample#memory_cache=0.00MB sample#memory_swap=0.00MB "
            "sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages "
            "sample#memory_quota=512.00MB",
            memory(21.0, 21.22, 0.0, 0.0, 348836.0, 343403.0, 512.0),
        ),
        # a worker dyno: the process type comes from source
        (
            "worker.3",
            f"source=worker.3 {DYNO} sample#load_avg_1m=0.01",
            DynoLoad(T, "worker", "worker.3", 0.01, None, None),
        ),
        # kB and GB are converted to MB (binary), bare numbers are MB
        (
            "web.1",
            "source=web.1 sample#memory_total=2048kB sample#memory_rss=1.5GB "
            "sample#memory_cache=3 sample#memory_quota=0.5gb",
            memory(2.0, 1536.0, 3.0, quota=512.0),
        ),
        # bytes with a bare B, and lowercase mb
        (
            "web.1",
            "source=web.1 sample#memory_total=1048576B sample#memory_rss=7mb",
            memory(1.0, 7.0),
        ),
        # page counts without the pages unit
        (
            "web.1",
            "source=web.1 sample#memory_pgpgin=10 sample#memory_pgpgout=20",
            memory(pgpgin=10.0, pgpgout=20.0),
        ),
        # unparsable values become None while the rest of the sample is kept
        (
            "web.1",
            "source=web.1 sample#memory_total=lots sample#memory_rss=-1MB "
            "sample#memory_swap=3furlongs sample#memory_pgpgin=5MB sample#memory_quota=512MB",
            memory(quota=512.0),
        ),
        # no source field: the procid names the dyno
        (
            "web.2",
            f"{DYNO} sample#load_avg_1m=1.5",
            DynoLoad(T, "web", "web.2", 1.5, None, None),
        ),
        # a source that is no process type falls back to the procid
        (
            "web.2",
            "source=$$$ sample#load_avg_1m=1.5",
            DynoLoad(T, "web", "web.2", 1.5, None, None),
        ),
        # a one-off dyno
        (
            "run.1234",
            "source=run.1234 sample#load_avg_5m=0.5",
            DynoLoad(T, "run", "run.1234", None, 0.5, None),
        ),
    ],
)
def test_parse_runtime_reads_memory_and_load_samples(
    procid: str, text: str, expected: DynoMemory | DynoLoad
) -> None:
    assert parse_runtime(T, procid, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # a lifecycle event from the same dyno
        "State changed from starting to up",
        # an empty line
        "",
        # sample# keys that are not memory or load
        "source=web.1 sample#db_connections=5",
        # the prefix only appears inside a quoted value
        'msg="sample#memory_total=1MB is what we logged"',
    ],
)
def test_parse_runtime_returns_none_for_lines_that_are_no_runtime_metrics(text: str) -> None:
    assert parse_runtime(T, "web.1", text) is None


@pytest.mark.parametrize(
    ("procid", "text"),
    [
        # memory keys without a single readable value
        ("web.1", "source=web.1 sample#memory_total=abc sample#memory_rss="),
        # load keys with empty values
        ("web.1", "source=web.1 sample#load_avg_1m= sample#load_avg_5m="),
        # a load average with a unit is not a load average
        ("web.1", "source=web.1 sample#load_avg_1m=2MB"),
        # neither source nor procid gives a process type
        ("!!", "source=$$$ sample#load_avg_1m=1.5"),
    ],
)
def test_parse_runtime_skips_runtime_lines_without_a_usable_sample(procid: str, text: str) -> None:
    assert parse_runtime(T, procid, text) == Skipped("runtime_metrics")
