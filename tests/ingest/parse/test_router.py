"""Router lines: requests, H-code errors and warnings, odd and missing fields."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drainpipe.ingest.parse import parse_router
from drainpipe.model import RouterRequest, Skipped

T = 1_795_255_200_123
RID = "request_id=8601b555-6a54-4f5c-9c7b-9d8c2bc4b9d0"


def request(
    status: int,
    service_ms: float | None,
    connect_ms: float | None = 1.0,
    size: int | None = 656,
    code: str | None = None,
    level: str = "info",
    process_type: str = "web",
) -> RouterRequest:
    return RouterRequest(T, process_type, status, service_ms, connect_ms, size, code, level)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the everyday line
        (
            f'at=info method=GET path="/cart" host=shop.example.com {RID} fwd="1.2.3.4" '
            "dyno=web.1 connect=1ms service=22ms status=304 bytes=656 protocol=https",
            request(304, 22.0),
        ),
        # H12 request timeout at=error
        (
            'at=error code=H12 desc="Request timeout" method=GET path="/" '
            f'host=myapp.herokuapp.com {RID} fwd="1.2.3.4" dyno=web.1 connect=0ms '
            "service=30000ms status=503 bytes=0 protocol=https",
            request(503, 30000.0, 0.0, 0, "H12", "error"),
        ),
        # H27 client interrupted at=warning, with an empty bytes field
        (
            'at=warning code=H27 desc="Client Request Interrupted" method=POST path="/upload" '
            f'host=myapp.herokuapp.com {RID} fwd="1.2.3.4" dyno=web.2 connect=0ms '
            "service=1ms status=499 bytes= protocol=https",
            request(499, 1.0, 0.0, None, "H27", "warning"),
        ),
        # H28 client connection idle at=warning
        (
            'at=warning code=H28 desc="Client Connection Idle" method=GET path="/stream" '
            f'host=myapp.herokuapp.com {RID} fwd="1.2.3.4" dyno=web.1 connect=1ms '
            "service=55000ms status=499 bytes=0 protocol=https",
            request(499, 55000.0, 1.0, 0, "H28", "warning"),
        ),
        # H14 no web dynos: dyno, connect, service and bytes all empty
        (
            'at=error code=H14 desc="No web dynos running" method=GET path="/" '
            f'host=myapp.herokuapp.com {RID} fwd="1.2.3.4" dyno= connect= service= '
            "status=503 bytes= protocol=https",
            request(503, None, None, None, "H14", "error"),
        ),
        # H10 app crashed with the older unquoted path and no protocol field
        (
            'at=error code=H10 desc="App crashed" method=GET path=/favicon.ico '
            f'host=myapp.herokuapp.com {RID} fwd="1.2.3.4" dyno= connect= service= '
            "status=503 bytes=",
            request(503, None, None, None, "H10", "error"),
        ),
        # the newer router's tls=, tls_version= and protocol=http2.0 fields
        (
            f'at=info method=GET path="/" host=shop.example.com {RID} fwd="1.2.3.4" '
            "dyno=web.3 connect=0ms service=5ms status=200 bytes=1234 protocol=http2.0 "
            "tls=true tls_version=tls1.3",
            request(200, 5.0, 0.0, 1234),
        ),
        # values without the ms unit
        (
            f'at=info method=GET path="/" host=a.example.com {RID} fwd="1.2.3.4" '
            "dyno=web.1 connect=1 service=22 status=200 bytes=10",
            request(200, 22.0, 1.0, 10),
        ),
        # decimal durations
        (
            f'at=info method=GET path="/" host=a.example.com {RID} fwd="1.2.3.4" '
            "dyno=web.1 connect=0.5ms service=22.25ms status=200 bytes=10",
            request(200, 22.25, 0.5, 10),
        ),
        # a quoted path with spaces and an escaped quote inside
        (
            'at=info method=GET path="/search?q=red \\"shoes\\"" host=a.example.com '
            f'{RID} fwd="1.2.3.4, 5.6.7.8" dyno=web.1 connect=1ms service=22ms status=200 '
            "bytes=656",
            request(200, 22.0),
        ),
        # a fake dyno= inside the quoted path does not fool the reader
        (
            'at=info method=GET path="/x dyno=evil.1 status=999" host=a.example.com '
            f'{RID} fwd="1.2.3.4" dyno=web.1 connect=1ms service=22ms status=200 bytes=656',
            request(200, 22.0),
        ),
        # a worker process type, and an upper-case dyno name lowercased
        (
            f'at=info method=GET path="/" host=a {RID} fwd="1" dyno=Worker_2.1 connect=1ms '
            "service=3ms status=200 bytes=656",
            request(200, 3.0, process_type="worker_2"),
        ),
        # a quoted dyno name
        (
            'at=info method=GET path="/" host=a fwd="1" dyno="web.1" connect=1ms '
            "service=3ms status=200 bytes=656",
            request(200, 3.0),
        ),
        # fields in another order
        (
            "status=201 service=7ms dyno=web.2 at=info method=POST connect=1ms bytes=656",
            request(201, 7.0),
        ),
        # no dyno field at all: the router only routes to web
        ("at=info method=GET status=200 service=4ms", request(200, 4.0, None, None)),
        # no at= field: info
        ("method=GET dyno=web.1 status=200 service=4ms", request(200, 4.0, None, None)),
        # at=WARN in another spelling
        (
            "at=WARN code=H27 dyno=web.1 status=499",
            request(499, None, None, None, "H27", "warning"),
        ),
        # an unknown at= with an H code is an error, without one it is info
        ("at=fatal code=H99 status=503", request(503, None, None, None, "H99", "error")),
        ("at=debug status=200", request(200, None, None, None)),
        # only a status
        ("status=200", request(200, None, None, None)),
        # only a service time: the status is 0
        ("at=info dyno=web.1 service=12ms", request(0, 12.0, None, None)),
        # only an H code
        ('at=error code=H99 desc="Platform error"', request(0, None, None, None, "H99", "error")),
        # a code that is not an H code is dropped
        ("at=error code=R14 status=503", request(503, None, None, None, None, "error")),
        # negative and non-numeric durations become None, not a skip
        (
            "at=info dyno=web.1 connect=-1ms service=abc status=200 bytes=x",
            request(200, None, None, None),
        ),
        # a status that is not 1 to 3 digits reads as 0; the service time keeps the line
        ("at=info status=2000 service=3ms", request(0, 3.0, None, None)),
        # NaN and infinity are not durations
        ("at=info status=200 service=nan connect=inf", request(200, None, None, None)),
    ],
)
def test_parse_router_reads_requests(text: str, expected: RouterRequest) -> None:
    assert parse_router(T, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # empty text
        "",
        # neither status, service nor an H code
        'at=info method=GET path="/" host=a.example.com dyno=web.1 connect=1ms',
        # all three empty
        "at=info dyno=web.1 connect= service= status= bytes=",
        # a dyno name that is not a process type
        f'at=info method=GET path="/" host=a {RID} fwd="1" dyno=web!.1 connect=1ms '
        "service=3ms status=200 bytes=656",
        # a non-ASCII dyno name
        "at=info dyno=wéb.1 status=200",
        # free text from the router process that is not a request
        "Shutting down",
    ],
)
def test_parse_router_skips_lines_that_are_no_request(text: str) -> None:
    assert parse_router(T, text) == Skipped("router_line")


VALUE = st.one_of(
    st.just(""),
    st.integers(min_value=0, max_value=99_999).map(str),
    st.integers(min_value=0, max_value=99_999).map(lambda n: f"{n}ms"),
    st.sampled_from(["-3ms", "1.5ms", "abc", "0"]),
)


@given(
    at=st.sampled_from(["info", "warning", "error"]),
    code=st.sampled_from(["", 'code=H12 desc="Request timeout" ', 'code=H27 desc="x y" ']),
    path=st.text(alphabet="/abc? =&", max_size=12),
    dyno=st.sampled_from(["", "web.1", "worker.12", "Web.2", "bad!.1"]),
    connect=VALUE,
    service=VALUE,
    status=st.sampled_from(["", "200", "304", "503", "0", "x"]),
    size=st.sampled_from(["", "0", "656", "x"]),
)
def test_the_fast_pattern_and_the_logfmt_path_read_a_line_alike(
    at: str,
    code: str,
    path: str,
    dyno: str,
    connect: str,
    service: str,
    status: str,
    size: str,
) -> None:
    fields = (
        f'method=GET path="{path}" host=a.example.com {RID} fwd="1.2.3.4" dyno={dyno} '
        f"connect={connect} service={service} status={status} bytes={size} protocol=https"
    )
    standard = f"at={at} {code}{fields}"
    reordered = f"{code}{fields} at={at}"  # does not start with at=: the logfmt path
    assert parse_router(T, standard) == parse_router(T, reordered)
