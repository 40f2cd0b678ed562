"""The syslog header of Logplex messages: fields, timestamps and why headers are skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drainpipe.ingest.parse import parse_header
from drainpipe.ingest.parse.syslog import parse_timestamp
from drainpipe.model import Skipped

T0 = 1_795_255_200_000  # 2026-11-21T10:00:00Z in epoch ms
HOUR = 3_600_000
ROUTER_TEXT = (
    'at=info method=GET path="/cart" host=shop.example.com '
    "request_id=8601b555-6a54-4f5c-9c7b-9d8c2bc4b9d0 "
    'fwd="1.2.3.4" dyno=web.1 connect=1ms service=22ms status=304 bytes=656 protocol=https'
)


def test_the_reference_instant_is_what_datetime_says() -> None:
    assert datetime(2026, 11, 21, 10, tzinfo=UTC).timestamp() * 1000 == T0


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        # a router line as Logplex sends it: microseconds, +00:00, trailing newline
        (
            b"<158>1 2026-11-21T10:00:00.123456+00:00 host heroku router - "
            + ROUTER_TEXT.encode()
            + b"\n",
            (T0 + 123, "heroku", "router", ROUTER_TEXT),
        ),
        # a runtime-metrics line from a dyno, UTC written as Z, no fraction
        (
            b"<45>1 2026-11-21T10:00:00Z host heroku web.1 - "
            b"source=web.1 sample#load_avg_1m=2.46\n",
            (T0, "heroku", "web.1", "source=web.1 sample#load_avg_1m=2.46"),
        ),
        # an API line with 3 fraction digits and Z
        (
            b"<190>1 2026-11-21T10:00:00.250Z host app api - Release v16 created by user a@b.c\n",
            (T0 + 250, "app", "api", "Release v16 created by user a@b.c"),
        ),
        # a negative offset: 05:00 at -05:00 is 10:00 UTC
        (
            b"<190>1 2026-11-21T05:00:00-05:00 host app web.1 - hello\n",
            (T0, "app", "web.1", "hello"),
        ),
        # a positive half-hour offset: 15:30 at +05:30 is 10:00 UTC
        (
            b"<190>1 2026-11-21T15:30:00+05:30 host app web.1 - hello\n",
            (T0, "app", "web.1", "hello"),
        ),
        # one fraction digit is tenths of a second
        (b"<13>1 2026-11-21T10:00:00.5Z host app web.1 - x", (T0 + 500, "app", "web.1", "x")),
        # two fraction digits are hundredths
        (b"<13>1 2026-11-21T10:00:00.05Z host app web.1 - x", (T0 + 50, "app", "web.1", "x")),
        # nanoseconds are truncated to whole milliseconds
        (
            b"<13>1 2026-11-21T10:00:00.999999999+00:00 host app web.1 - x",
            (T0 + 999, "app", "web.1", "x"),
        ),
        # lowercase t and z are allowed by RFC 3339
        (b"<13>1 2026-11-21t10:00:00z host app web.1 - x", (T0, "app", "web.1", "x")),
        # a leap second reads as the first instant of the next minute
        (
            b"<13>1 2026-11-21T09:59:60Z host app web.1 - x",
            (T0, "app", "web.1", "x"),
        ),
        # a message without a trailing newline
        (b"<13>1 2026-11-21T10:00:00Z host app web.1 - x", (T0, "app", "web.1", "x")),
        # CRLF is stripped like a newline
        (b"<13>1 2026-11-21T10:00:00Z host app web.1 - x\r\n", (T0, "app", "web.1", "x")),
        # spaces inside the text are kept as they are
        (
            b"<13>1 2026-11-21T10:00:00Z host app web.1 -   two  spaces \n",
            (T0, "app", "web.1", "  two  spaces "),
        ),
        # a message with no text at all
        (b"<13>1 2026-11-21T10:00:00Z host heroku web.1 -\n", (T0, "heroku", "web.1", "")),
        # NILVALUE hostname, app name and procid are accepted; the names become ""
        (b"<13>1 2026-11-21T10:00:00Z - - - - x", (T0, "", "", "x")),
        # a MSGID other than "-" is accepted too
        (b"<13>1 2026-11-21T10:00:00Z host app web.1 ID47 x", (T0, "app", "web.1", "x")),
        # the lowest and highest priorities
        (b"<0>1 2026-11-21T10:00:00Z host app web.1 - x", (T0, "app", "web.1", "x")),
        (b"<191>1 2026-11-21T10:00:00Z host app web.1 - x", (T0, "app", "web.1", "x")),
        # RFC 5424 structured data with a private SD-ID is skipped
        (
            b'<13>1 2026-11-21T10:00:00Z host app web.1 - [exampleSDID@32473 iut="3" '
            b'eventSource="Application"] x',
            (T0, "app", "web.1", "x"),
        ),
        # several SD elements, escaped quote and bracket in a value, IANA SD-IDs
        (
            b'<13>1 2026-11-21T10:00:00Z host app web.1 - [timeQuality tzKnown="1"]'
            b'[origin ip="1.2.3.4"][a@1 v="q\\"u]"] x y',
            (T0, "app", "web.1", "x y"),
        ),
        # structured data with no text after it
        (
            b"<13>1 2026-11-21T10:00:00Z host app web.1 - [meta]\n",
            (T0, "app", "web.1", ""),
        ),
        # app output that starts with a bracketed tag is text, not structured data
        (
            b"<13>1 2026-11-21T10:00:00Z host app web.1 - [req-42] Started GET",
            (T0, "app", "web.1", "[req-42] Started GET"),
        ),
        # bytes that are not UTF-8 become U+FFFD instead of failing the line
        (
            b"<13>1 2026-11-21T10:00:00Z host app web.1 - caf\xe9 \xff ok\n",
            (T0, "app", "web.1", "caf\ufffd \ufffd ok"),
        ),
        # UTF-8 text is decoded as such
        (
            "<13>1 2026-11-21T10:00:00Z host app web.1 - café ☕\n".encode(),
            (T0, "app", "web.1", "café ☕"),
        ),
    ],
)
def test_parse_header_reads_timestamp_names_and_text(
    msg: bytes, expected: tuple[int, str, str, str]
) -> None:
    assert parse_header(msg) == expected


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        # an empty message (a zero-length frame)
        (b"", "syslog_header"),
        # plain text without any header
        (b"hello world\n", "syslog_header"),
        # no PRI part
        (b"1 2026-11-21T10:00:00Z host app web.1 - x", "syslog_header"),
        # a PRI that is not a number
        (b"<ab>1 2026-11-21T10:00:00Z host app web.1 - x", "syslog_header"),
        # a PRI above 191 (facility 23, severity 7 is the highest)
        (b"<192>1 2026-11-21T10:00:00Z host app web.1 - x", "syslog_header"),
        # a syslog version other than 1
        (b"<13>2 2026-11-21T10:00:00Z host app web.1 - x", "syslog_header"),
        # the old BSD syslog format
        (b"<13>Nov 21 10:00:00 host app: x", "syslog_header"),
        # too few fields: the procid and MSGID are missing
        (b"<13>1 2026-11-21T10:00:00Z host app", "syslog_header"),
        # two spaces in a row leave a field empty
        (b"<13>1 2026-11-21T10:00:00Z host  app web.1 - x", "syslog_header"),
        # a NILVALUE timestamp cannot be placed in time
        (b"<13>1 - host app web.1 - x", "timestamp"),
        # a date without a time
        (b"<13>1 2026-11-21 host app web.1 - x", "timestamp"),
        # no UTC offset
        (b"<13>1 2026-11-21T10:00:00 host app web.1 - x", "timestamp"),
        # no UTC offset after a fraction
        (b"<13>1 2026-11-21T10:00:00.123456 host app web.1 - x", "timestamp"),
        # an offset without its colon
        (b"<13>1 2026-11-21T10:00:00+0000 host app web.1 - x", "timestamp"),
        # a fraction dot without digits
        (b"<13>1 2026-11-21T10:00:00.Z host app web.1 - x", "timestamp"),
        # a fraction with a letter in it
        (b"<13>1 2026-11-21T10:00:00.12a+00:00 host app web.1 - x", "timestamp"),
        # month 13
        (b"<13>1 2026-13-21T10:00:00Z host app web.1 - x", "timestamp"),
        # 30 February
        (b"<13>1 2026-02-30T10:00:00Z host app web.1 - x", "timestamp"),
        # hour 24
        (b"<13>1 2026-11-21T24:00:00Z host app web.1 - x", "timestamp"),
        # minute 60
        (b"<13>1 2026-11-21T10:60:00Z host app web.1 - x", "timestamp"),
        # an offset of 24 hours
        (b"<13>1 2026-11-21T10:00:00+24:00 host app web.1 - x", "timestamp"),
        # an offset of 60 minutes
        (b"<13>1 2026-11-21T10:00:00+00:60 host app web.1 - x", "timestamp"),
        # a space where the T goes splits the timestamp into two fields
        (b"<13>1 2026-11-21 10:00:00Z host app web.1 - x", "timestamp"),
        # slashes instead of dashes
        (b"<13>1 2026/11/21T10:00:00Z host app web.1 - x", "timestamp"),
        # a sign inside a number field
        (b"<13>1 2026-11-+1T10:00:00Z host app web.1 - x", "timestamp"),
    ],
)
def test_parse_header_skips_bad_headers_and_timestamps_with_a_reason(
    msg: bytes, reason: str
) -> None:
    assert parse_header(msg) == Skipped(reason)


def test_lines_of_one_second_keep_their_own_fractions() -> None:
    stamps = [b"2026-11-21T10:00:00.%03d+00:00" % ms for ms in (0, 1, 500, 999)]
    assert [parse_timestamp(ts) for ts in stamps] == [T0, T0 + 1, T0 + 500, T0 + 999]


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(9999, 12, 30),
        timezones=st.builds(
            lambda minutes: timezone(timedelta(minutes=minutes)),
            st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
        ),
    ),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
)
def test_parse_timestamp_agrees_with_datetime_on_any_rfc3339_instant(
    when: datetime, timespec: str
) -> None:
    text = when.isoformat(timespec=timespec)
    exact_us = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    if timespec == "seconds":
        exact_us -= when.microsecond
    elif timespec == "milliseconds":
        exact_us -= when.microsecond % 1000
    assert parse_timestamp(text.encode()) == exact_us // 1000


@pytest.mark.parametrize(
    ("msg", "text"),
    [
        # log-shuttle's default header: MSGID and the structured data's NILVALUE
        (
            b"<190>1 2026-11-21T10:00:00+00:00 host heroku web.1 - - "
            b"State changed from starting to up\n",
            "State changed from starting to up",
        ),
        # Heroku's own error-code page: an L10 report with both NILVALUEs
        (
            b"<172>1 2026-11-21T10:00:00+00:00 host heroku logplex - - Error L10 (output buffer "
            b"overflow): 54 messages dropped since 2026-11-21T10:00:00+00:00.",
            "Error L10 (output buffer overflow): 54 messages dropped since "
            "2026-11-21T10:00:00+00:00.",
        ),
        # a router line from an RFC 5424 sender
        (
            b"<158>1 2026-11-21T10:00:00+00:00 host heroku router - - " + ROUTER_TEXT.encode(),
            ROUTER_TEXT,
        ),
        # NILVALUE and nothing after it
        (b"<190>1 2026-11-21T10:00:00+00:00 host app web.1 - -", ""),
        # structured data with a parameter, whatever its SD-ID
        (
            b'<190>1 2026-11-21T10:00:00+00:00 host app web.1 - [exampleSDID k="v"] hello',
            "hello",
        ),
        # two elements, a private and a registered one
        (
            b'<190>1 2026-11-21T10:00:00+00:00 host app web.1 - [a@32473 x="1"][meta y="2"] hi',
            "hi",
        ),
        # app output in brackets with no parameters stays text
        (
            b"<190>1 2026-11-21T10:00:00+00:00 host app web.1 - [req-42] Started GET",
            "[req-42] Started GET",
        ),
        # dashes that are app output, not a NILVALUE
        (b"<190>1 2026-11-21T10:00:00+00:00 host app web.1 - --verbose set", "--verbose set"),
    ],
)
def test_rfc5424_structured_data_is_stripped_before_the_text(msg: bytes, text: str) -> None:
    header = parse_header(msg)
    assert not isinstance(header, Skipped) and header[3] == text
