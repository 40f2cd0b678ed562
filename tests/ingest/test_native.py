"""The compiled readers (drainpipe/ingest/_scan.c) give exactly what the Python readers give."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drainpipe.ingest import framing, native
from drainpipe.ingest.parse import bulkrouter
from drainpipe.ingest.parse.bulkrouter import RouterColumns
from tests.ingest.parse.test_bulk import EVERYDAY, FIELDS, TIMESTAMP, VALUE, router

scan = native.scan
needs_scan = pytest.mark.skipif(scan is None, reason="drainpipe._scan is not built")


def test_the_compiled_readers_are_built() -> None:
    """pip builds them with the machine's C compiler; a silent failure would only show
    as slow ingest, so the suite says it."""
    if os.environ.get("DRAINPIPE_PURE_PYTHON", "") not in ("", "0"):
        pytest.skip("DRAINPIPE_PURE_PYTHON is set")
    assert scan is not None, "drainpipe._scan did not build: is a C compiler installed?"


one_line = st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"") + b"\n")


@needs_scan
@given(st.lists(one_line, min_size=1, max_size=40), st.sampled_from([b"%d ", b"%03d "]))
def test_split_lines_equals_the_numpy_framing(messages: list[bytes], prefix: bytes) -> None:
    assert scan is not None
    body = b"".join(prefix % len(m) + m for m in messages)
    assert scan.split_lines(body) == framing._split_lines(body) == messages


@needs_scan
@given(st.lists(one_line, min_size=1, max_size=20), st.data())
def test_split_lines_equals_the_numpy_framing_on_damaged_bodies(
    messages: list[bytes], data: st.DataObject
) -> None:
    assert scan is not None
    body = bytearray(b"".join(b"%d " % len(m) + m for m in messages))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.sampled_from([0x20, 0x0A, 0x30, 0x39, 0x41, 0x00]))
    assert scan.split_lines(bytes(body)) == framing._split_lines(bytes(body))


@needs_scan
@pytest.mark.parametrize(
    "body",
    [b"", b"5 abc\n", b"12345678 x\n", b"1234567 " + b"x" * 1234566 + b"\n", b"3 ab\n3 cd\n"],
)
def test_split_lines_refuses_what_the_numpy_framing_refuses(body: bytes) -> None:
    assert scan is not None
    assert scan.split_lines(body) == framing._split_lines(body)


def same(a: RouterColumns, b: RouterColumns) -> bool:
    arrays = ("index", "ts_ms", "status", "code", "pt_id")
    return (
        all(np.array_equal(getattr(a, k), getattr(b, k)) for k in arrays)
        and all(
            np.array_equal(getattr(a, k), getattr(b, k), equal_nan=True)
            for k in ("service_ms", "connect_ms", "bytes")
        )
        and [a.process_types[i] for i in a.pt_id] == [b.process_types[i] for i in b.pt_id]
        and (a.skipped, a.rest) == (b.skipped, b.rest)
    )


def pattern(frames: list[bytes]) -> RouterColumns:
    """What the pattern reads of `frames`, made lines as `read_router` makes them."""
    return bulkrouter.by_pattern(bulkrouter.joined_lines(frames, b"".join(frames)), len(frames))


OTHER = [
    b"<190>1 2026-11-21T10:00:00.042+00:00 host app web.1 - hello\n",
    b"<45>1 2026-11-21T10:00:00Z host heroku web.1 - source=web.1 sample#load_avg_1m=0.1\n",
    b"<158>1 2026-11-21T10:00:00Z host heroku api - Scaled to web@1:Standard-1X\n",
    b"\n",
    b"not syslog\n",
]


def mostly(good: list[str], odd: list[str]) -> st.SearchStrategy[str]:
    """One of `good` three times in four, else one of `odd`."""
    return st.sampled_from(good * (3 * len(odd)) + odd * len(good))


GOOD_TS = [
    "2026-11-21T10:00:00.042+00:00",
    "2026-11-21T10:00:00Z",
    "2026-11-21T10:00:01.5-05:00",
    "2024-02-29T23:59:60.123456z",
    "1969-12-31T23:59:59.999+05:30",
]


@st.composite
def router_lines(draw: st.DrawFn) -> bytes:
    """Router lines, mostly of the usual shape, with fields varied and some damaged."""
    ts = draw(st.one_of(st.sampled_from(GOOD_TS), TIMESTAMP))
    at = draw(mostly(["info", "error", "warning"], ["debug", "infos"]))
    code = draw(mostly(["", 'code=H12 desc="Request timeout" ', "code=H0 desc=x "], ["code=H1 "]))
    dyno = draw(mostly(["web.1", "", "Web.2", "worker-1.3"], ["bad!.1", ".1", "web", "é.1"]))
    service = draw(
        st.one_of(st.sampled_from(["22ms", "0", "12345678ms", "123456789", "123456789ms"]), VALUE)
    )
    status = draw(mostly(["200", "503", "99"], ["", "0", "000", "2000", "x"]))
    connect = draw(mostly(["1ms", "0", "", "12345678ms"], ["123456789ms", "1.5ms", "-1"]))
    size = draw(mostly(["656", "0", "", "12345678"], ["123456789", "x", "1e3"]))
    end = draw(mostly(["\n", " protocol=https\n", "\r\n"], ["x\n", "\r\r\n", " \n"]))
    pri = draw(mostly(["158", "0", "191"], ["05", "192", "1000", ""]))
    text = (
        f"at={at} {code}{FIELDS.decode()}dyno={dyno} connect={connect} service={service} "
        f"status={status} bytes={size}{end}"
    )
    line = f"<{pri}>1 {ts} host heroku router - {text}".encode()
    if draw(st.integers(0, 9)) == 0:  # damage one byte
        at_byte = draw(st.integers(0, len(line) - 2))
        damage = draw(st.sampled_from([b" ", b'"', b"\\", b"x", b"0", b"\n"]))
        line = line[:at_byte] + damage + line[at_byte + 1 :]
    if draw(st.integers(0, 9)) == 0:  # a frame without its newline
        line = line.rstrip(b"\n")
    return line


@needs_scan
@settings(max_examples=1000)
@given(st.lists(st.one_of(router_lines(), st.sampled_from(OTHER)), min_size=1, max_size=4))
def test_the_compiled_router_reader_equals_the_pattern(lines: list[bytes]) -> None:
    joined = b"".join(lines)
    read = bulkrouter.by_scan(lines)
    if read is None:  # left to the pattern: only when a router line is not read here
        assert b" heroku router " in joined
        return
    assert same(read, pattern(lines))


@needs_scan
@pytest.mark.parametrize(
    "line",
    [
        router(EVERYDAY + b" protocol=http2.0 tls=true"),
        router(
            b'at=error code=H12 desc="Request timeout" ' + FIELDS + b"dyno=web.2 "
            b"connect=0ms service=30000ms status=503 bytes=0 protocol=https"
        ),
        router(
            b'at=error code=H14 desc="No web dynos running" '
            + FIELDS
            + b"dyno= connect= service= status=503 bytes="
        ),
        router(EVERYDAY, ts=b"2026-11-21T05:00:00.5-05:00", end=b"\r\n"),
        router(EVERYDAY, ts=b"1969-12-31T23:59:59.999Z"),
        router(EVERYDAY, ts=b"2024-02-29T10:00:00+05:30"),
        # days that do not exist, read here as the pattern reads them: left to the parser
        router(EVERYDAY, ts=b"2026-02-29T10:00:00Z"),
        router(EVERYDAY, ts=b"1900-02-29T10:00:00Z"),
        router(EVERYDAY, ts=b"2100-02-29T10:00:00Z"),
        router(EVERYDAY, ts=b"0000-01-01T10:00:00Z"),
        router(EVERYDAY, ts=b"2026-04-31T10:00:00Z"),
        router(EVERYDAY, ts=b"2026-11-21T10:00:00+24:00"),
        router(EVERYDAY, ts=b"2000-02-29T10:00:00Z"),
    ],
)
def test_everyday_router_lines_are_read_by_the_compiled_reader(line: bytes) -> None:
    lines = [line, OTHER[0], line]
    read = bulkrouter.by_scan(lines)
    assert read is not None
    assert same(read, pattern(lines))


@st.composite
def usual_lines(draw: st.DrawFn) -> bytes:
    """Router lines of exactly the usual shape, every value drawn from its whole range."""
    year, month = draw(st.integers(1, 9999)), draw(st.integers(1, 12))
    day = draw(st.integers(1, 31 if month != 2 else 29))
    clock = [draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 60))]
    fraction = draw(st.sampled_from(["", "."])) + draw(st.text("0123456789", max_size=9))
    if fraction == ".":
        fraction = ".0"
    offset = draw(
        st.one_of(
            st.sampled_from(["Z", "z"]),
            st.builds(
                "{}{:02d}:{:02d}".format,
                st.sampled_from("+-"),
                st.integers(0, 23),
                st.integers(0, 59),
            ),
        )
    )
    ts = f"{year:04d}-{month:02d}-{day:02d}T{clock[0]:02d}:{clock[1]:02d}:{clock[2]:02d}"
    code = draw(st.one_of(st.just(""), st.integers(0, 9999).map(lambda c: f'code=H{c} desc="d" ')))
    head = draw(st.text("abcXYZ019_-", max_size=6))
    dyno = head + draw(st.sampled_from(["", ".1", ".run.12"])) if head else ""
    service = draw(st.text("0123456789", max_size=8)) + draw(st.sampled_from(["", "ms"]))
    status = draw(st.text("0123456789", max_size=3))
    connect = draw(st.text("0123456789", max_size=8)) + draw(st.sampled_from(["", "ms"]))
    size = draw(st.text("0123456789", max_size=8))
    end = draw(st.sampled_from(["\n", "\r\n", " protocol=https tls=true\n"]))
    text = (
        f"at={draw(st.sampled_from(['info', 'error', 'warning']))} {code}{FIELDS.decode()}"
        f"dyno={dyno} connect={connect} service={service} status={status} bytes={size}{end}"
    )
    return (
        f"<{draw(st.integers(0, 191))}>1 {ts}{fraction}{offset} h heroku router - {text}".encode()
    )


@needs_scan
@settings(max_examples=1000)
@given(st.lists(st.one_of(usual_lines(), st.sampled_from(OTHER)), min_size=1, max_size=6))
def test_usual_router_lines_are_all_read_by_the_compiled_reader(lines: list[bytes]) -> None:
    read = bulkrouter.by_scan(lines)
    assert read is not None
    assert same(read, pattern(lines))
