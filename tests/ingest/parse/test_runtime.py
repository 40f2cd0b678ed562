"""log-runtime-metrics lines: memory and load samples, units, and what is not one."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drainpipe.ingest.parse import parse_runtime
from drainpipe.model import DynoLoad, DynoMemory, Skipped

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


# Pieces of generated runtime-metrics lines: the first GOOD_* entries of each list are
# values parse_runtime reads, the rest odd ones. Most lines take only good values, so
# that most of them have the usual shape which the bulk reader reads.
NUMBERS = ["21.00", "0.00", "512", "0", ".5", "5.", "348836", "1" * 30]
NUMBERS += ["-1", "abc", "", "1e3", "1_000", "\u0661"]  # an Arabic-Indic digit one
GOOD_NUMBERS = 8
SIZE_UNITS = ["MB", "mb", "kB", "KB", "GB", "gb", "B", "b", "", "pages", "MiB", "furlongs"]
GOOD_SIZE_UNITS = 9
PAGE_UNITS = ["pages", "", "PAGES", "MB", "kB"]
GOOD_PAGE_UNITS = 3
LOAD_VALUES = ["2.46", "0.00", "1", ".5", "3.", "", "x", "2MB", "-0.1"]
GOOD_LOAD_VALUES = 5
SOURCES = [
    "source=web.1 ",
    "source=worker.3 ",
    "source=run.1234 ",
    "source=Web_2.1 ",
    "",  # no source: the procid names the dyno
    "source= ",
    "source=.1 ",  # no process type: the procid names the dyno
    "source=$$$ ",
    'source="web.1" ',
    "source=wéb.1 ",
]
DYNO_FIELDS = ["dyno=heroku.1234.8f6b5b7e-54c6 ", "", "dyno= ", 'dyno="a b" ', "dyno=a=b "]
PROCIDS = ["web.1"] * 6 + ["worker.2", "run.1234", "!!", ".1", "router", "logplex", "Web.3"]
MEMORY_KEYS = ("total", "rss", "cache", "swap", "pgpgin", "pgpgout", "quota")


@st.composite
def runtime_texts(draw: st.DrawFn) -> str:
    """The text of a memory or load line: mostly as Heroku logs it, sometimes odd."""
    odd = draw(st.integers(0, 3)) == 0

    def pick(values: list[str], good: int) -> str:
        return draw(st.sampled_from(values if odd else values[:good]))

    if draw(st.booleans()):
        values = [
            pick(NUMBERS, GOOD_NUMBERS)
            + (
                pick(PAGE_UNITS, GOOD_PAGE_UNITS)
                if "pg" in key
                else pick(SIZE_UNITS, GOOD_SIZE_UNITS)
            )
            for key in MEMORY_KEYS
        ]
        samples = [f"sample#memory_{k}={v}" for k, v in zip(MEMORY_KEYS, values, strict=True)]
    else:
        samples = [
            f"sample#load_avg_{k}={pick(LOAD_VALUES, GOOD_LOAD_VALUES)}"
            for k in ("1m", "5m", "15m")
        ]
    if odd and draw(st.booleans()):  # some samples missing
        samples = draw(st.lists(st.sampled_from(samples), min_size=1, max_size=4))
    if odd and draw(st.booleans()):  # samples in another order
        samples.reverse()
    text = draw(st.sampled_from(SOURCES)) + draw(st.sampled_from(DYNO_FIELDS)) + " ".join(samples)
    return text + (draw(st.sampled_from(["", " ", " x=1", "\t"])) if odd else "")


@st.composite
def runtime_lines(draw: st.DrawFn, ts: st.SearchStrategy[str]) -> str:
    """A whole runtime-metrics line without its newline, timestamps drawn from `ts`."""
    pri = draw(st.sampled_from(["45", "45", "0", "191", "192"]))
    procid = draw(st.sampled_from(PROCIDS))
    app = draw(st.sampled_from(["heroku"] * 8 + ["app"]))
    return f"<{pri}>1 {draw(ts)} host {app} {procid} - {draw(runtime_texts())}"


SCALE = {"": 1.0, "mb": 1.0, "kb": 1 / 1024, "gb": 1024.0, "b": 1 / 1024**2}
UNITS_OF = {"memory_pgpgin": ("", "pages"), "memory_pgpgout": ("", "pages"), "load": ("",)}
PLAIN = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([A-Za-z]*)")


@settings(max_examples=300)
@given(procid=st.sampled_from(PROCIDS), text=runtime_texts())
def test_parse_runtime_reads_each_value_as_its_number_times_its_unit(
    procid: str, text: str
) -> None:
    got = parse_runtime(T, procid, text)
    assert got is not None
    if isinstance(got, Skipped):
        return
    # an independent reading: the last value of each sample# key in the text
    raw = dict(pair.split("=", 1) for pair in text.split() if pair.startswith("sample#"))
    names = [name for name in got.__slots__ if name.startswith(("memory_", "load_"))]
    for name in names:
        found = PLAIN.fullmatch(raw.get(f"sample#{name}", ""))
        units = UNITS_OF.get(name, UNITS_OF["load"] if name.startswith("load") else tuple(SCALE))
        if found is None or found[2].lower() not in units:
            assert getattr(got, name) is None
        else:
            assert getattr(got, name) == float(found[1]) * SCALE.get(found[2].lower(), 1.0)
