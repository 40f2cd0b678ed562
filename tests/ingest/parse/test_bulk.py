"""Router lines read in bulk: the same values as the per-line parser, or left to it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drainpipe.ingest.parse import parse_message, read_router
from drainpipe.ingest.parse.bulkrouter import RouterColumns
from drainpipe.model import RouterRequest, Skipped

TS = b"2026-11-21T10:00:00.042+00:00"
T = 1_795_255_200_042
RID = b"request_id=8601b555-6a54-4f5c-9c7b-9d8c2bc4b9d0"
FIELDS = b'method=GET path="/cart" host=shop.example.com ' + RID + b' fwd="1.2.3.4" '
EVERYDAY = b"at=info " + FIELDS + b"dyno=web.1 connect=1ms service=22ms status=304 bytes=656"


def router(text: bytes, ts: bytes = TS, end: bytes = b"\n") -> bytes:
    return b"<158>1 " + ts + b" host heroku router - " + text + end


def requests(read: RouterColumns) -> list[tuple[int, int, str, int, float | None, int]]:
    """(frame index, ts_ms, process type, status, service_ms, code) of each request."""
    return [
        (i, ts, read.process_types[pt], status, None if math.isnan(svc) else svc, code)
        for i, ts, pt, status, svc, code in zip(
            read.index.tolist(),
            read.ts_ms.tolist(),
            read.pt_id.tolist(),
            read.status.tolist(),
            read.service_ms.tolist(),
            read.code.tolist(),
            strict=True,
        )
    ]


def sizes(read: RouterColumns) -> list[tuple[float | None, float | None]]:
    """(connect_ms, bytes) of each request."""
    return [
        (None if math.isnan(c) else c, None if math.isnan(b) else b)
        for c, b in zip(read.connect_ms.tolist(), read.bytes.tolist(), strict=True)
    ]


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        # the everyday line, with the newer router's trailing fields
        (router(EVERYDAY + b" protocol=http2.0 tls=true"), (T, "web", 304, 22.0, 0)),
        # H12 at=error: the code number is kept
        (
            router(
                b'at=error code=H12 desc="Request timeout" '
                + FIELDS
                + b"dyno=web.2 connect=0ms service=30000ms status=503 bytes=0 protocol=https"
            ),
            (T, "web", 503, 30000.0, 12),
        ),
        # H14 no web dynos: empty dyno, connect, service and bytes
        (
            router(
                b'at=error code=H14 desc="No web dynos running" '
                + FIELDS
                + b"dyno= connect= service= status=503 bytes="
            ),
            (T, "web", 503, None, 14),
        ),
        # an upper-case dyno name and values without the ms unit
        (
            router(b"at=info " + FIELDS + b"dyno=Web_2.1 connect=1 service=7 status=200 bytes=1"),
            (T, "web_2", 200, 7.0, 0),
        ),
        # a Z timestamp with nine fraction digits, and a line ending in \r\n
        (
            router(EVERYDAY, ts=b"2026-11-21T10:00:00.123456789Z", end=b"\r\n"),
            (T - 42 + 123, "web", 304, 22.0, 0),
        ),
        # no newline at the end of the frame, a one-digit fraction and a -05:00 offset
        (
            router(EVERYDAY, ts=b"2026-11-21T05:00:00.5-05:00", end=b""),
            (T - 42 + 500, "web", 304, 22.0, 0),
        ),
        # an escaped quote inside the quoted path
        (
            router(EVERYDAY.replace(b'"/cart"', b'"/q=\\"x\\""')),
            (T, "web", 304, 22.0, 0),
        ),
    ],
)
def test_usual_router_lines_are_read_in_bulk(
    frame: bytes, expected: tuple[int, str, int, float | None, int]
) -> None:
    read = read_router([frame])
    assert read.rest == []
    assert requests(read) == [(0, *expected)]
    rec = parse_message(frame)
    assert isinstance(rec, RouterRequest)
    assert (rec.ts_ms, rec.process_type, rec.status, rec.service_ms) == expected[:4]


@pytest.mark.parametrize(
    "frame",
    [
        # fields in another order: the logfmt path of parse_router
        router(b"status=201 service=7ms dyno=web.2 at=info method=POST connect=1ms bytes=656"),
        # a decimal service time
        router(EVERYDAY.replace(b"service=22ms", b"service=22.5ms")),
        # a service time of nine digits
        router(EVERYDAY.replace(b"service=22ms", b"service=123456789ms")),
        # a quoted dyno name, a dyno name that starts with a dot
        router(EVERYDAY.replace(b"dyno=web.1", b'dyno="web.1"')),
        router(EVERYDAY.replace(b"dyno=web.1", b"dyno=.1")),
        # a timestamp that names no instant: February 30th
        router(EVERYDAY, ts=b"2026-02-30T10:00:00.042+00:00"),
        # an offset of 24 hours
        router(EVERYDAY, ts=b"2026-11-21T10:00:00.042+24:00"),
        # a timestamp without an offset
        router(EVERYDAY, ts=b"2026-11-21T10:00:00.042"),
        # text straight after the bytes field
        router(EVERYDAY + b"x"),
        # a newline inside the frame
        router(EVERYDAY.replace(b"/cart", b"/ca\nrt")),
        # an empty frame
        b"",
        # not the router: runtime metrics, an app line
        b"<45>1 " + TS + b" host heroku web.1 - source=web.1 sample#load_avg_1m=0.5\n",
        b"<190>1 " + TS + b" host app web.1 - " + EVERYDAY + b"\n",
    ],
)
def test_other_lines_are_left_to_the_per_line_parser(frame: bytes) -> None:
    read = read_router([frame])
    assert read.rest == [0]
    assert len(read.index) == 0


@pytest.mark.parametrize(
    "frame",
    [
        # no status, service time or H code
        router(b"at=info " + FIELDS + b"dyno=web.1 connect=1ms service= status= bytes=0"),
        # a dyno name that is not a process type, a non-ASCII one
        router(EVERYDAY.replace(b"dyno=web.1", b"dyno=web!.1")),
        router(EVERYDAY.replace(b"dyno=web.1", "dyno=wéb.1".encode())),
    ],
)
def test_a_router_line_without_a_request_is_skipped_in_bulk(frame: bytes) -> None:
    read = read_router([frame])
    assert (read.rest, read.skipped, len(read.index)) == ([], 1, 0)
    assert parse_message(frame) == Skipped("router_line")


def test_frames_keep_their_index_among_other_lines() -> None:
    app = b"<190>1 " + TS + b" host app web.1 - hello\n"
    worker = router(EVERYDAY.replace(b"dyno=web.1", b"dyno=worker.3"))
    read = read_router([app, router(EVERYDAY), app, worker, b"", router(EVERYDAY)])
    assert read.rest == [0, 2, 4]
    assert [(i, pt) for i, _, pt, *_ in requests(read)] == [(1, "web"), (3, "worker"), (5, "web")]


DIGITS = st.text(alphabet="0123456789", max_size=10)
TIMESTAMP = st.builds(
    "{}-{}-{}{}{}:{}:{}{}{}".format,
    st.sampled_from(["2026", "1969", "0000", "9999", "2024"]),
    st.sampled_from(["01", "02", "11", "12", "13", "00"]),
    st.sampled_from(["01", "21", "28", "29", "30", "31", "32"]),
    st.sampled_from(["T", "t", " "]),
    st.sampled_from(["00", "10", "23", "24"]),
    st.sampled_from(["00", "59", "60"]),
    st.sampled_from(["00", "59", "60", "61"]),
    st.one_of(st.just(""), DIGITS.map(lambda d: "." + d)),
    st.sampled_from(["Z", "z", "+00:00", "-05:00", "+05:30", "+24:00", "+00:60", "", "+0000"]),
)
VALUE = st.one_of(
    DIGITS,
    DIGITS.map(lambda d: d + "ms"),
    st.sampled_from(["1.5ms", "-3ms", "abc", "123456789012345678ms"]),
)


@settings(max_examples=300)
@given(
    ts=TIMESTAMP,
    code=st.sampled_from(["", 'code=H12 desc="Request timeout" ', "code=H0 desc=x ", "code=R1 "]),
    dyno=st.sampled_from(["web.1", "", "Web.2", "worker-1.3", "bad!.1", ".1", "web"]),
    service=VALUE,
    status=st.sampled_from(["", "200", "0", "000", "2000", "x", "99"]),
    end=st.sampled_from(["\n", "\r\n", "", " protocol=https\n", "x\n", "\r\r\n"]),
    connect=VALUE,
    size=st.one_of(DIGITS, st.sampled_from(["", "x", "123456789"])),
)
def test_bulk_values_equal_the_per_line_parser(
    ts: str, code: str, dyno: str, service: str, status: str, end: str, connect: str, size: str
) -> None:
    text = (
        f"at=info {code}{FIELDS.decode()}dyno={dyno} connect={connect} service={service} "
        f"status={status} bytes={size}"
    )
    frame = router(text.encode(), ts=ts.encode(), end=end.encode())
    read = read_router([frame])
    rec = parse_message(frame)
    if read.rest:
        return  # left to the per-line parser: nothing to compare
    if read.skipped:
        assert rec == Skipped("router_line")
        return
    assert isinstance(rec, RouterRequest)
    code_number = int(rec.code[1:]) if rec.code else 0
    assert requests(read) == [
        (0, rec.ts_ms, rec.process_type, rec.status, rec.service_ms, code_number)
    ]
    assert sizes(read) == [(rec.connect_ms, None if rec.bytes is None else float(rec.bytes))]
