"""records.build: records and counts of drain bodies, equal to the per-line reference."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drainpipe import codec
from drainpipe.config import Config
from drainpipe.ingest import records
from drainpipe.ingest.parse import read_router
from drainpipe.model import EVENTS_TOPIC, ROUTER, RawBatch
from tests.ingest.parse.test_runtime import runtime_lines
from tests.support.drains import event, load, memory, router

T = 1_795_255_200_000
NOW = T + 60_000
FUTURE_MS = 300_000


def same(
    frames: list[bytes], now_ms: int = NOW, max_age_ms: int = records.NO_LIMIT
) -> records.Parsed:
    """build()'s result, after checking it equals build_reference() in every part."""
    fast = records.build("app1", frames, now_ms, FUTURE_MS, max_age_ms)
    slow = records.build_reference("app1", frames, now_ms, FUTURE_MS, max_age_ms)
    assert fast.records == slow.records
    assert dict(fast.lines) == dict(slow.lines)
    assert dict(fast.skipped) == dict(slow.skipped)
    assert fast.upstream_dropped == slow.upstream_dropped
    return fast


def test_a_router_body_is_read_in_bulk_and_batched_per_process_type() -> None:
    lines = [router(T + i, 20 + i, 200, dyno=f"web.{i % 3 + 1}") for i in range(300)]
    lines[7] = router(T + 7, 30000, 503, dyno="web.1", code="H12")
    lines[9] = router(T + 9, 5, 200, dyno="worker.2")
    frames = [line.encode() for line in lines]
    assert read_router(frames).rest == []
    parsed = same(frames)
    assert dict(parsed.lines) == {"router": 300}
    assert [r.key for r in parsed.records] == [b"app1|web", b"app1|worker"]
    _, pt, columns = codec.decode_batch(ROUTER, parsed.records[0].value)
    assert pt == "web"
    assert columns["ts_ms"][:3].tolist() == [T, T + 1, T + 2]
    assert columns["code"][7] == 12
    assert columns["status"][8] == 200


def test_batches_come_in_the_order_of_their_first_line() -> None:
    frames = [
        event(T, "heroku", "web.1", "State changed from starting to up").encode(),
        memory(T, "web.1", 21.0, 20.0, 0.0, 512.0).encode(),
        router(T, 10, 200, dyno="worker.1").encode(),
        load(T, "web.1", 0.5).encode(),
        router(T, 10, 200).encode(),
        router(T + 1, 30000, 503, code="H12").encode(),
        memory(T, "worker.1", 21.0, 20.0, 0.0, 512.0).encode(),
        router(T + 2, 12, 200, dyno="worker.1").encode(),
    ]
    parsed = same(frames)
    topics = [(r.topic, r.key) for r in parsed.records]
    assert topics == [
        ("DYNO_MEMORY.v1", b"app1|web"),
        ("ROUTER_REQUESTS.v1", b"app1|worker"),
        ("DYNO_LOAD.v1", b"app1|web"),
        ("ROUTER_REQUESTS.v1", b"app1|web"),
        ("DYNO_MEMORY.v1", b"app1|worker"),
        (EVENTS_TOPIC, b"app1|web"),
    ]


def test_router_lines_from_the_future_are_counted_as_clock_skew() -> None:
    frames = [router(T + i * 100_000, 10, 200).encode() for i in range(10)]
    parsed = same(frames, now_ms=T)
    assert dict(parsed.skipped) == {"clock_skew": 6}
    assert dict(parsed.lines) == {"router": 4}


DAY_MS = 86_400_000


def test_lines_older_than_the_max_age_are_counted_as_too_old_whatever_their_kind() -> None:
    old = T - 9 * DAY_MS  # the max age below is 8 days
    frames = [
        router(old, 10, 200).encode(),  # read in bulk
        router(T, 10, 200).encode(),
        router(old, 12, 200, code="H12").encode(),
        memory(old, "web.1", 100, 90, 0, 512).encode(),  # read in bulk
        memory(T, "web.1", 100, 90, 0, 512).encode(),
        event(old, "heroku", "web.1", "State changed from up to down").encode(),  # one by one
        event(old, "app", "web.1", "count#orders=1").encode(),  # custom, one by one
        event(T, "app", "web.1", "count#orders=1").encode(),
    ]
    parsed = same(frames, now_ms=T, max_age_ms=8 * DAY_MS)
    assert dict(parsed.skipped) == {"too_old": 5}
    assert dict(parsed.lines) == {"router": 1, "memory": 1, "custom": 1}


def test_a_2020_line_is_too_old_for_the_default_retention() -> None:
    line = router(1_600_000_000_000, 10, 200).encode()  # 2020-09-13
    parsed = same([line], now_ms=T, max_age_ms=Config().max_age_ms)
    assert (dict(parsed.skipped), parsed.records) == ({"too_old": 1}, [])


def test_an_empty_body_has_no_records() -> None:
    parsed = same([])
    assert parsed.records == []


# Pieces of generated drain lines; each list mixes the usual with the odd.
TIMESTAMPS = [
    "2026-11-21T10:00:{s:02d}.{f}+00:00",
    "2026-11-21T10:00:{s:02d}Z",
    "2026-11-21t10:00:{s:02d}.{f}z",
    "2026-11-21T05:00:{s:02d}.{f}-05:00",
    "2026-11-21T10:00:{s:02d}.+00:00",  # a dot without digits
    "2026-02-30T10:00:{s:02d}Z",  # no such day
    "1969-12-31T23:59:{s:02d}.{f}Z",  # before the epoch
    "2026-11-21T10:00:{s:02d}.{f}+24:00",  # no such offset
    "2026-11-21T10:00:{s:02d}.{f}",  # no offset
    "-",
]
QUOTED = ['"/cart"', '"/search?q=red shoes"', '"/q=\\"x\\""', "/bare", '""', '"/a\\\\b"', '"/é"']
DYNOS = ["web.1", "web.2", "Web.3", "worker.1", "", "bad!.1", '"web.1"', "wéb.1", "web"]
DURATIONS = ["", "0", "22", "22ms", "30000ms", "1.5ms", "-3ms", "123456789ms", "abc"]
STATUSES = ["200", "304", "503", "", "0", "2000", "x"]
ENDS = ["", " protocol=https", " protocol=http2.0 tls=true tls_version=tls1.3", " ", "x", "\r"]
HEADS = [
    "at=info",
    'at=error code=H12 desc="Request timeout"',
    'at=warning code=H27 desc="Client Request Interrupted"',
    "at=error code=H0 desc=x",
    "at=error code=R14 desc=x",
    "at=WARN",
    "",
]


@st.composite
def router_lines(draw: st.DrawFn) -> str:
    ts = draw(st.sampled_from(TIMESTAMPS)).format(
        s=draw(st.integers(0, 61)), f=draw(st.text("0123456789", max_size=9))
    )
    text = (
        f"{draw(st.sampled_from(HEADS))} method=GET path={draw(st.sampled_from(QUOTED))} "
        f"host=shop.example.com request_id=8601b555 fwd={draw(st.sampled_from(QUOTED))} "
        f"dyno={draw(st.sampled_from(DYNOS))} connect={draw(st.sampled_from(DURATIONS))} "
        f"service={draw(st.sampled_from(DURATIONS))} status={draw(st.sampled_from(STATUSES))} "
        f"bytes={draw(st.sampled_from(['656', '', 'x', '0', '12345678', '123456789']))}"
        f"{draw(st.sampled_from(ENDS))}"
    )
    if draw(st.integers(0, 9)) == 0:  # fields in another order
        text = " ".join(reversed(text.split(" ")))
    pri = draw(st.sampled_from(["158", "158", "0", "191", "192", "0158"]))
    procid = draw(st.sampled_from(["router"] * 8 + ["web.1", "logplex"]))
    return f"<{pri}>1 {ts} host heroku {procid} - {text}"


OTHER_LINES = [
    memory(T, "web.1", 21.0, 20.5, 0.0, 512.0).rstrip("\n"),
    load(T, "web.2", 2.46).rstrip("\n"),
    event(T, "heroku", "web.1", "State changed from starting to up").rstrip("\n"),
    event(T, "app", "api", "Release v16 created by user a@example.com").rstrip("\n"),
    event(T, "heroku", "logplex", "Error L10 (output buffer overflow): 54 messages dropped").rstrip(
        "\n"
    ),
    event(T, "app", "web.1", "Started GET / count#hits=1").rstrip("\n"),
    "<158>1 2026-11-21T10:00:00Z host heroku router - Shutting down",
    "garbage",
    "",
]
EVENT_TEXTS = [
    "State changed from starting to up",
    "State changed from up to crashed",
    "state changed from UP to Down trailing text",
    "State changed from up",  # claims the line but cannot be read: skipped
    "Starting process with command `bundle exec puma -C config/puma.rb`",
    "Starting process with command bin/worker --queue default",
    "Stopping all processes with SIGTERM",
    "Stopping remaining processes with sigkill",
    "Process exited with status 137",
    "Process exited with status x",
    "Restarting",
    "Cycling",
    "Error L10 (output buffer overflow): 54 messages dropped since 2026-11-21T10:00:00+00:00.",
    "Error L10 (output buffer overflow): 1 message dropped",
    "Error L10 (output buffer overflow)",
    "Error R14 (Memory quota exceeded)",
    "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 60 seconds",
    "Release v16 created by user a@example.com",
    "Deploy 059375fe by user a@example.com",
    "Rollback to v11 by user a@example.com",
    "Set FOO, BAR config vars by user a@example.com",
    "Remove FOO config vars",
    "Scaled to web@2:Standard-1X worker@1:Standard-1X by user a@b.c",
    "Build succeeded",
    "  Restarting  ",
    "Started GET / count#hits=1",
    "hello",
    "",
]

EVENT_SOURCES = [
    ("heroku", "web.1"),
    ("heroku", "worker.2"),
    ("app", "api"),
    ("heroku", "logplex"),
    ("heroku", "bad!.1"),  # a dyno name that is no process type
    ("heroku", "api"),
    ("app", "web.1"),
    ("heroku", "router"),
]


@st.composite
def event_lines(draw: st.DrawFn) -> str:
    ts = draw(st.sampled_from(TIMESTAMPS)).format(
        s=draw(st.integers(0, 61)), f=draw(st.text("0123456789", max_size=9))
    )
    app, procid = draw(st.sampled_from(EVENT_SOURCES))
    return f"<190>1 {ts} host {app} {procid} - {draw(st.sampled_from(EVENT_TEXTS))}"


RUNTIME_TS = st.sampled_from(TIMESTAMPS).map(lambda ts: ts.format(s=0, f="042"))
LINES = st.one_of(
    router_lines(),
    router_lines(),
    runtime_lines(RUNTIME_TS),
    runtime_lines(RUNTIME_TS),
    event_lines(),
    st.sampled_from(OTHER_LINES),
    st.text(max_size=30),
)
FRAMES = st.builds(
    lambda line, end: (line + end).encode(),
    LINES,
    st.sampled_from(["\n"] * 12 + ["\r\n", "", "\n\n"]),
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    frames=st.lists(FRAMES, max_size=40),
    now_ms=st.sampled_from([NOW, T - 400_000, 0]),
)
def test_build_equals_the_per_line_reference(frames: list[bytes], now_ms: int) -> None:
    same(frames, now_ms)


@given(
    frames=st.lists(router_lines().map(lambda line: (line + "\n").encode()), max_size=40),
    joins=st.lists(st.sampled_from([b"\n", b"x", b"\\"]), max_size=3),
)
def test_build_equals_the_reference_when_frames_are_cut_oddly(
    frames: list[bytes], joins: list[bytes]
) -> None:
    # newlines moved between frames, stray backslashes: the framing still decides lines
    for i, extra in enumerate(joins):
        if frames:
            k = i % len(frames)
            frames[k] = frames[k][:-1] + extra if extra != b"\n" else frames[k] + extra
    same(frames)


def test_custom_metrics_become_one_batch_per_process_type_and_name() -> None:
    from drainpipe import codec
    from drainpipe.model import CUSTOM, CUSTOM_KINDS
    from tests.support import drains

    lines = [
        drains.event(1_795_000_000_000, "app", "web.1", "measure#db=4ms count#hits=1"),
        drains.event(1_795_000_001_000, "app", "web.2", "measure#db=6ms"),
        drains.event(1_795_000_002_000, "app", "worker.1", "measure#db=9ms"),
    ]
    frames = [(f"{line}").encode() for line in lines]
    out = records.build("owner", frames, 1_795_000_010_000, 300_000)
    assert out == records.build_reference("owner", frames, 1_795_000_010_000, 300_000)
    assert out.lines["custom"] == 3
    got = {}
    for r in out.records:
        assert r.topic == CUSTOM.topic
        decoded = codec._batch_decoder.decode(r.value)
        _, pt, cols = codec.decode_batch(CUSTOM, r.value)
        got[(pt, decoded.series)] = (list(cols["value"]), list(cols["kind"]))
    assert got == {
        ("web", "db"): ([4.0, 6.0], [CUSTOM_KINDS["measure"]] * 2),
        ("web", "hits"): ([1.0], [CUSTOM_KINDS["count"]]),
        ("worker", "db"): ([9.0], [CUSTOM_KINDS["measure"]]),
    }


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.one_of(runtime_lines(RUNTIME_TS), event_lines()), max_size=40),
    now_ms=st.sampled_from([NOW, T - 400_000]),
)
def test_build_equals_the_reference_on_runtime_and_event_bodies(
    lines: list[str], now_ms: int
) -> None:
    same([(line + "\n").encode() for line in lines], now_ms)


def test_router_batches_written_before_connect_and_bytes_still_decode() -> None:
    """ROUTER_REQUESTS.v1 batches from before its two appended columns (in an embedded
    log or a Kafka topic when drainpipe is upgraded) read with those columns absent."""
    old = [
        np.array([T, T + 1], np.int64).tobytes(),
        np.array([22.0, np.nan]).tobytes(),
        np.array([200, 503], np.int16).tobytes(),
        np.array([0, 12], np.int16).tobytes(),
    ]
    value = msgspec.msgpack.encode(RawBatch("app1", "web", old))
    owner, pt, columns = codec.decode_batch(ROUTER, value)
    assert (owner, pt, columns["status"].tolist()) == ("app1", "web", [200, 503])
    assert np.isnan(columns["connect_ms"]).all() and np.isnan(columns["bytes"]).all()
    with pytest.raises(codec.DecodeError, match="batch has 3 columns, schema has 6"):
        codec.decode_batch(ROUTER, msgspec.msgpack.encode(RawBatch("app1", "web", old[:3])))


def test_a_runtime_line_with_a_nil_procid_is_read_as_the_per_line_parser_reads_it() -> None:
    """Found by the fuzzer: `heroku - source=web.1 dyno=... sample#...` has a nil procid
    and its source in the MSGID slot; the bulk reader took `-` for a process type."""
    line = (
        b"<45>1 2026-11-18T16:00:00.000000+00:00 host heroku - source=web.1 "
        b"dyno=heroku.1234.8f6b5b7e sample#load_avg_1m=0.30 sample#load_avg_5m=1.06 "
        b"sample#load_avg_15m=0.99\n"
    )
    same([line, load(T, "web.1", 0.5).encode()], T + 1000)
