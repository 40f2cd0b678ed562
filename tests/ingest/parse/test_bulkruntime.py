"""The bulk runtime-metrics and header readers equal the per-line parsers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drainpipe.ingest.parse import parse_header, parse_message
from drainpipe.ingest.parse.bulkheader import read_headers
from drainpipe.ingest.parse.bulkruntime import RuntimeColumns, read_runtime
from drainpipe.model import DynoLoad, DynoMemory, Skipped
from tests.ingest.parse.test_bulk import TIMESTAMP, TS, T
from tests.ingest.parse.test_runtime import runtime_lines

SOURCE = b"source=web.1 dyno=heroku.1234.8f6b5b7e "
MEMORY = (
    b"sample#memory_total=21.00MB sample#memory_rss=21.22MB sample#memory_cache=0.00MB "
    b"sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages "
    b"sample#memory_pgpgout=343403pages sample#memory_quota=512.00MB"
)
LOAD = b"sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99"
Sample = tuple[int, int, str, tuple[float | None, ...]]


def dyno(text: bytes, procid: bytes = b"web.1", ts: bytes = TS, end: bytes = b"\n") -> bytes:
    return b"<45>1 " + ts + b" host heroku " + procid + b" - " + text + end


def samples(read: RuntimeColumns) -> list[Sample]:
    """(frame index, ts_ms, process type, values) of each memory then load sample."""
    out = []
    for kind in (read.memory, read.load):
        columns = [column.tolist() for column in kind.values.values()]
        for i, (index, ts, pt) in enumerate(
            zip(kind.index.tolist(), kind.ts_ms.tolist(), kind.pt_id.tolist(), strict=True)
        ):
            out.append((index, ts, read.process_types[pt], tuple(c[i] for c in columns)))
    return out


def sample_of(rec: object) -> tuple[int, str, tuple[float | None, ...]]:
    """(ts_ms, process type, values as build batches them) of a per-line record."""
    if isinstance(rec, DynoMemory):
        values = (rec.memory_total, rec.memory_rss, rec.memory_cache, rec.memory_swap)
        return rec.ts_ms, rec.process_type, (*values, rec.memory_quota)
    assert isinstance(rec, DynoLoad)
    return rec.ts_ms, rec.process_type, (rec.load_avg_1m, rec.load_avg_5m, rec.load_avg_15m)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        # the memory line as Heroku logs it
        (dyno(SOURCE + MEMORY), (T, "web", (21.0, 21.22, 0.0, 0.0, 512.0))),
        # the load line as Heroku logs it
        (dyno(SOURCE + LOAD), (T, "web", (2.46, 1.06, 0.99))),
        # kB, GB, bytes and bare numbers, in any case
        (
            dyno(
                SOURCE
                + MEMORY.replace(b"21.00MB", b"2048kB")
                .replace(b"21.22MB", b"1.5gb")
                .replace(b"0.00MB", b"1048576B", 1)
                .replace(b"0.00MB", b"7")
                .replace(b"343403pages", b"5")
            ),
            (T, "web", (2.0, 1536.0, 1.0, 7.0, 512.0)),
        ),
        # no source or dyno field: the procid names the dyno; a \r\n line end
        (dyno(LOAD, procid=b"worker.2", end=b"\r\n"), (T, "worker", (2.46, 1.06, 0.99))),
        # a source that is no process type falls back to the procid
        (dyno(b"source=.1 " + LOAD, procid=b"run.12"), (T, "run", (2.46, 1.06, 0.99))),
        # no newline at the end of the frame, a Z timestamp, numbers like .5 and 3.
        (
            dyno(
                LOAD.replace(b"2.46", b".5").replace(b"1.06", b"3."),
                ts=b"2026-11-21T10:00:00.042Z",
                end=b"",
            ),
            (T, "web", (0.5, 3.0, 0.99)),
        ),
    ],
)
def test_usual_runtime_lines_are_read_in_bulk(
    frame: bytes, expected: tuple[int, str, tuple[float, ...]]
) -> None:
    read = read_runtime([frame])
    assert read.rest == []
    assert samples(read) == [(0, *expected)]
    assert sample_of(parse_message(frame)) == expected


@pytest.mark.parametrize(
    "frame",
    [
        # a unit parse_runtime does not know, a malformed value, a missing value
        dyno(SOURCE + MEMORY.replace(b"21.00MB", b"21.00MiB")),
        dyno(SOURCE + LOAD.replace(b"2.46", b"-2.46")),
        dyno(SOURCE + LOAD.replace(b"2.46", b"")),
        # fewer samples, samples in another order
        dyno(SOURCE + b"sample#load_avg_1m=2.46"),
        dyno(SOURCE + b"sample#load_avg_5m=1.06 sample#load_avg_1m=2.46 sample#load_avg_15m=1"),
        # a quoted source, text after the last sample
        dyno(b'source="web.1" ' + LOAD),
        dyno(SOURCE + LOAD + b" x=1"),
        # no such day; router and logplex lines go elsewhere whatever they say
        dyno(SOURCE + LOAD, ts=b"2026-02-30T10:00:00.042+00:00"),
        dyno(SOURCE + LOAD, procid=b"router"),
        dyno(SOURCE + LOAD, procid=b"logplex"),
        # a nil procid (tests/ingest/test_records.py has the fuzzer's case of it)
        dyno(SOURCE + LOAD, procid=b"-"),
        # not a runtime-metrics line at all
        dyno(b"State changed from starting to up"),
    ],
)
def test_other_runtime_lines_are_left_to_the_per_line_parser(frame: bytes) -> None:
    read = read_runtime([frame, dyno(SOURCE + LOAD)])  # one usual line, so the scan runs
    assert read.rest == [0]
    assert [index for index, *_ in samples(read)] == [1]


def test_a_runtime_line_without_a_process_type_is_skipped_in_bulk() -> None:
    frame = dyno(b"source=.2 " + LOAD, procid=b".1")
    read = read_runtime([frame])
    assert (read.rest, read.skipped, samples(read)) == ([], 1, [])
    assert parse_message(frame) == Skipped("runtime_metrics")
    # beside a line whose timestamp names no instant, which is left to the per-line parser
    read = read_runtime([dyno(SOURCE + LOAD, ts=b"2026-02-30T10:00:00Z"), frame])
    assert (read.rest, read.skipped, samples(read)) == ([0], 1, [])


@settings(max_examples=500)
@given(
    lines=st.lists(runtime_lines(TIMESTAMP), min_size=1, max_size=12),
    end=st.sampled_from(["\n", "\n", "\r\n", ""]),
)
def test_bulk_samples_equal_the_per_line_parser(lines: list[str], end: str) -> None:
    frames = [(line + end).encode() for line in lines]
    read = read_runtime(frames)
    bulk = {index: (ts, pt, values) for index, ts, pt, values in samples(read)}
    skipped = 0
    for i, frame in enumerate(frames):
        rec = parse_message(frame)
        if i in read.rest:
            continue  # left to the per-line parser: nothing to compare
        if i in bulk:
            assert bulk[i] == sample_of(rec)
        else:
            assert rec == Skipped("runtime_metrics")
            skipped += 1
    assert read.skipped == skipped


# Pieces of generated syslog headers and texts, the usual first.
HEADER_FIELDS = st.sampled_from([b"host", b"heroku", b"app", b"web.1", b"api", b"-", b"", b"h\r"])
TEXTS = st.sampled_from(
    [
        b"State changed from starting to up",
        b"Release v16 created by user a@example.com",
        b'[meta sequenceId="1"] Restarting',  # structured data: parse_header drops it
        b"[req-42] Started GET /",  # no structured data: kept
        b"[",
        b"",
        b" two  spaces ",
        b"caf\xc3\xa9 \xff",  # UTF-8 and a byte that is not
        b"a\rb",
    ]
)


@settings(max_examples=500)
@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from([b"<190>1", b"<45>1", b"<0>1", b"<192>1", b"<190>2"]),
            TIMESTAMP,
            HEADER_FIELDS,
            HEADER_FIELDS,
            HEADER_FIELDS,
            st.sampled_from([b"-", b"-", b"", b"msg"]),
            TEXTS,
            st.sampled_from([b"\n", b"\n", b"\r\n", b"\r\r\n", b"", b" \n"]),
        ),
        min_size=1,
        max_size=8,
    ),
    short=st.booleans(),
)
def test_bulk_headers_equal_the_per_line_header_parser(
    lines: list[tuple[bytes, str, bytes, bytes, bytes, bytes, bytes, bytes]], short: bool
) -> None:
    frames = [
        b" ".join((pri, ts.encode(), host, app, procid, msgid))
        + (b"" if short and i == 0 else b" " + text)
        + end
        for i, (pri, ts, host, app, procid, msgid, text, end) in enumerate(lines)
    ]
    headers = read_headers(frames)
    assert len(headers) == len(frames)
    for frame, header in zip(frames, headers, strict=True):
        if header is not None:  # None: left to parse_header
            assert header == parse_header(frame)


def test_usual_headers_are_split_in_bulk() -> None:
    frames = [
        b"<190>1 " + TS + b" host app api - Release v16 created by user a@example.com\r\n",
        b"<190>1 " + TS + b" host heroku web.1 - State changed from starting to up",
        b"<190>1 " + TS + b' host app web.1 - [meta x="1"] hello\n',  # structured data
        b"<190>1 2026-02-30T10:00:00Z host app web.1 - hello\n",  # no such day
    ]
    headers = read_headers(frames)
    assert headers[:2] == [parse_header(frame) for frame in frames[:2]]
    assert headers[2:] == [None, None]
