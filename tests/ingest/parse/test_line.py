"""Whole messages through parse_message: dispatch by source, real bodies, no crashes."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drainpipe.ingest.framing import split_frames
from drainpipe.ingest.parse import parse_message
from drainpipe.model import (
    CustomMetrics,
    DynoLoad,
    DynoMemory,
    PlatformEvent,
    Record,
    RouterRequest,
    Skipped,
)

T = 1_795_255_200_000
TS = b"2026-11-21T10:00:00.042+00:00"
ROUTER = (
    b'at=info method=GET path="/cart" host=shop.example.com '
    b'request_id=8601b555-6a54-4f5c-9c7b-9d8c2bc4b9d0 fwd="1.2.3.4" dyno=web.1 connect=1ms '
    b"service=22ms status=304 bytes=656 protocol=https"
)
MEMORY = (
    b"source=web.1 dyno=heroku.12345.8f6b5b7e-54c6-4b8c-9b1e-2c1f2a6e3f10 "
    b"sample#memory_total=21.00MB sample#memory_rss=21.22MB sample#memory_cache=0.00MB "
    b"sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages "
    b"sample#memory_pgpgout=343403pages sample#memory_quota=512.00MB"
)
LOAD = (
    b"source=web.1 dyno=heroku.12345.8f6b5b7e-54c6-4b8c-9b1e-2c1f2a6e3f10 "
    b"sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99"
)
L10 = b"Error L10 (output buffer overflow): 54 messages dropped since 2026-11-21T10:00:00+00:00."


def line(pri: int, app: bytes, procid: bytes, text: bytes) -> bytes:
    return b"<%d>1 %s host %s %s - %s\n" % (pri, TS, app, procid, text)


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        # heroku router: a request
        (
            line(158, b"heroku", b"router", ROUTER),
            RouterRequest(T + 42, "web", 304, 22.0, 1.0, 656, None, "info"),
        ),
        # heroku web.1: a memory sample
        (
            line(45, b"heroku", b"web.1", MEMORY),
            DynoMemory(T + 42, "web", "web.1", 21.0, 21.22, 0.0, 0.0, 348836.0, 343403.0, 512.0),
        ),
        # heroku web.1: a load sample
        (
            line(45, b"heroku", b"web.1", LOAD),
            DynoLoad(T + 42, "web", "web.1", 2.46, 1.06, 0.99),
        ),
        # heroku web.1: not runtime metrics, so a lifecycle event
        (
            line(45, b"heroku", b"web.1", b"State changed from starting to up"),
            PlatformEvent(
                T + 42,
                "web",
                "web.1",
                "state",
                "State changed from starting to up",
                {"from": "starting", "to": "up"},
            ),
        ),
        # heroku logplex: the drop report
        (
            line(172, b"heroku", b"logplex", L10),
            PlatformEvent(
                T + 42,
                "",
                "logplex",
                "logplex_drop",
                L10.decode(),
                {"dropped": "54", "since": "2026-11-21T10:00:00+00:00"},
            ),
        ),
        # app api: a release
        (
            line(190, b"app", b"api", b"Release v16 created by user a@example.com"),
            PlatformEvent(
                T + 42,
                "",
                "api",
                "release",
                "Release v16 created by user a@example.com",
                {"version": "16", "user": "a@example.com"},
            ),
        ),
        # heroku web.1: something that is neither metrics nor a known event
        (line(45, b"heroku", b"web.1", b"Process running mem=1028M(100.6%)"), None),
        # the app's own output is not read here, even when it looks like an event
        (line(190, b"app", b"web.1", b"Restarting"), None),
        # nor app output that looks like a router line
        (line(190, b"app", b"web.1", ROUTER), None),
        # an unknown app name
        (line(190, b"other", b"api", b"Release v16 created by user a@example.com"), None),
        # a bad router line is skipped with the router's reason
        (line(158, b"heroku", b"router", b"at=info method=GET"), Skipped("router_line")),
        # a bad runtime line with the runtime reason
        (
            line(45, b"heroku", b"web.1", b"sample#memory_total=abc"),
            Skipped("runtime_metrics"),
        ),
        # a malformed event with the event reason
        (line(45, b"heroku", b"web.1", b"State changed from"), Skipped("event_line")),
        # a bad header
        (b"<158>1 garbage\n", Skipped("syslog_header")),
        # a bad timestamp
        (b"<158>1 yesterday host heroku router - " + ROUTER + b"\n", Skipped("timestamp")),
        # non-UTF-8 bytes in app output do not break the line
        (line(190, b"app", b"web.1", b"\xff\xfe caf\xe9"), None),
        # non-UTF-8 bytes in a router path are replaced and the request is still read
        (
            line(158, b"heroku", b"router", ROUTER.replace(b"/cart", b"/caf\xe9")),
            RouterRequest(T + 42, "web", 304, 22.0, 1.0, 656, None, "info"),
        ),
    ],
)
def test_parse_message_dispatches_on_app_name_and_procid(
    msg: bytes, expected: Record | Skipped | None
) -> None:
    assert parse_message(msg) == expected


def test_a_drain_body_of_many_frames_parses_into_the_records_it_carries() -> None:
    messages = [line(158, b"heroku", b"router", ROUTER)] * 300
    messages += [line(45, b"heroku", b"web.%d" % n, MEMORY) for n in range(1, 4)]
    messages += [line(45, b"heroku", b"web.%d" % n, LOAD) for n in range(1, 4)]
    messages += [line(190, b"app", b"web.1", b"Started GET /cart")] * 50
    messages += [line(45, b"heroku", b"web.2", b"Error R14 (Memory quota exceeded)")]
    messages += [line(172, b"heroku", b"logplex", L10)]
    messages += [b"garbage\n"]
    body = b"".join(b"%d %s" % (len(m), m) for m in messages)

    kinds = Counter(type(parse_message(m)).__name__ for m in split_frames(body))

    assert kinds == {
        "RouterRequest": 300,
        "DynoMemory": 3,
        "DynoLoad": 3,
        "NoneType": 50,
        "PlatformEvent": 2,
        "Skipped": 1,
    }


@given(st.binary(max_size=400))
def test_parse_message_never_raises_on_arbitrary_bytes(msg: bytes) -> None:
    parse_message(msg)


SOURCES = st.sampled_from(
    [
        (b"heroku", b"router"),
        (b"heroku", b"web.1"),
        (b"heroku", b"logplex"),
        (b"heroku", b"run.42"),
        (b"app", b"api"),
        (b"app", b"web.1"),
    ]
)
FRAGMENTS = st.sampled_from(
    [
        b"at=",
        b"code=H12 ",
        b'desc="',
        b"dyno=",
        b"status=",
        b"service=",
        b"ms ",
        b"sample#memory_total=",
        b"sample#load_avg_1m=",
        b"source=",
        b"MB ",
        b"State changed from ",
        b"Error L10 (",
        b"Error R14 (",
        b"Release v",
        b"Scaled to ",
        b"Starting process with command `",
        b" by user ",
        b"\\",
        b'"',
        b"=",
        b" ",
        b"\xff",
        b"9",
        b".",
    ]
)


@given(SOURCES, st.lists(st.one_of(FRAGMENTS, st.binary(max_size=8)), max_size=30))
def test_parse_message_never_raises_on_near_miss_platform_lines(
    source: tuple[bytes, bytes], pieces: list[bytes]
) -> None:
    app, procid = source
    result = parse_message(line(158, app, procid, b"".join(pieces)))
    assert result is None or isinstance(
        result, RouterRequest | DynoMemory | DynoLoad | PlatformEvent | CustomMetrics | Skipped
    )
