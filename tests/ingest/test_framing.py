"""Octet-counted framing of drain bodies: what splits, what is rejected and where."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drainpipe.ingest import framing
from drainpipe.ingest.framing import MAX_FRAME_BYTES, FramingError, split_frames

ROUTER = (
    b"<158>1 2026-11-21T10:00:00.123456+00:00 host heroku router - at=info method=GET "
    b'path="/cart" host=shop.example.com request_id=8601b555-6a54-4f5c-9c7b-9d8c2bc4b9d0 '
    b'fwd="1.2.3.4" dyno=web.1 connect=1ms service=22ms status=304 bytes=656 protocol=https\n'
)
MEMORY = (
    b"<45>1 2026-11-21T10:00:01.000000+00:00 host heroku web.1 - source=web.1 "
    b"dyno=heroku.12345.8f6b5b7e-54c6-4b8c-9b1e-2c1f2a6e3f10 sample#memory_total=21.00MB "
    b"sample#memory_quota=512.00MB\n"
)


def frame(*messages: bytes) -> bytes:
    """The octet-counted body Logplex would send for `messages`."""
    return b"".join(b"%d %s" % (len(m), m) for m in messages)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # an empty body holds no frames
        (b"", []),
        # one real router line, its newline kept for the parser to strip
        (frame(ROUTER), [ROUTER]),
        # two frames of different kinds back to back
        (frame(ROUTER, MEMORY), [ROUTER, MEMORY]),
        # a newline after the last frame is tolerated
        (frame(ROUTER) + b"\n", [ROUTER]),
        # so is any run of trailing whitespace
        (frame(ROUTER, MEMORY) + b" \r\n\t ", [ROUTER, MEMORY]),
        # a body of whitespace only holds no frames
        (b"\r\n", []),
        # a zero length is an empty message, left for the parser to skip
        (b"0 " + frame(ROUTER), [b"", ROUTER]),
        # the length counts bytes, not characters: "é" is two bytes
        (b"6 caf\xc3\xa9\n", ["café\n".encode()]),
        # bytes that are not UTF-8 are kept exactly
        (b"4 \xff\xfe\x00\n", [b"\xff\xfe\x00\n"]),
        # a message may contain spaces, digits and newlines: only the count matters
        (b"9 12 34\n5 6", [b"12 34\n5 6"]),
        # leading zeros in a length are still a decimal number
        (b"003 abc", [b"abc"]),
    ],
)
def test_split_frames_returns_each_message_exactly_as_framed(
    body: bytes, expected: list[bytes]
) -> None:
    assert split_frames(body) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # a length prefix made of letters
        (b"abc def", "frame 1 at byte 0: length prefix 'abc' is not a number"),
        # a bad second frame is reported at its own offset, counted from 1
        (b"6 hello\nx1 a", "frame 2 at byte 8: length prefix 'x1' is not a number"),
        # a signed length is not a number either
        (b"-5 hello", "frame 1 at byte 0: length prefix '-5' is not a number"),
        (b"+5 hello", "frame 1 at byte 0: length prefix '+5' is not a number"),
        # a body that starts with a space has no length prefix
        (b" 5 hello", "frame 1 at byte 0: expected a length prefix, found a space"),
        # the space after the length is missing
        (
            b"6\nhello\n",
            "frame 1 at byte 0: length prefix '6' is followed by '\\n', not a space",
        ),
        # the body ends inside the length prefix of the second frame
        (
            b"5 hello12",
            "frame 2 at byte 7: length prefix '12' is not followed by a space before the body ends",
        ),
        # a newline between frames is not trailing whitespace: the framing is off
        (b"5 hello\n5 hello", "frame 2 at byte 7: length prefix '\\n5' is not a number"),
        # the length runs past the end of the body (a truncated POST)
        (
            b"10 hello\n",
            "frame 1 at byte 0: length 10 runs past the end of the body (6 bytes left)",
        ),
        # the second frame's length runs past the end
        (
            b"3 abc3 ab",
            "frame 2 at byte 5: length 3 runs past the end of the body (2 bytes left)",
        ),
        # an absurd length, above the 1 MiB limit
        (
            b"2000000 x",
            "frame 1 at byte 0: length prefix 2000000 exceeds the 1048576-byte limit",
        ),
        # more than 7 digits is absurd before looking any further
        (b"12345678 x", "frame 1 at byte 0: length prefix '12345678...' has more than 7 digits"),
        # non-ASCII bytes in a prefix are shown escaped
        (b"\xff5 x", "frame 1 at byte 0: length prefix '\\xff5' is not a number"),
    ],
)
def test_split_frames_rejects_broken_framing_saying_what_and_where(
    body: bytes, message: str
) -> None:
    with pytest.raises(FramingError) as raised:
        split_frames(body)
    assert str(raised.value) == message


def test_framing_error_is_a_value_error_carrying_frame_offset_and_problem() -> None:
    body = frame(ROUTER, MEMORY) + b"9999 short"
    with pytest.raises(ValueError) as raised:
        split_frames(body)
    error = raised.value
    assert isinstance(error, FramingError)
    assert error.frame == 3
    assert error.offset == len(frame(ROUTER, MEMORY))
    assert error.problem == "length 9999 runs past the end of the body (5 bytes left)"


def test_a_frame_of_exactly_the_limit_is_accepted() -> None:
    message = b"x" * MAX_FRAME_BYTES
    assert split_frames(frame(message)) == [message]


def test_a_body_of_many_frames_splits_into_all_of_them_in_order() -> None:
    messages = [ROUTER.replace(b"status=304", b"status=%d" % (200 + i % 300)) for i in range(1000)]
    messages += [MEMORY] * 24
    assert split_frames(frame(*messages)) == messages


@given(st.lists(st.binary(max_size=300), max_size=50), st.sampled_from([b"", b"\n", b" \r\n"]))
def test_split_frames_round_trips_any_framed_list_of_byte_strings(
    messages: list[bytes], trailer: bytes
) -> None:
    assert split_frames(frame(*messages) + trailer) == messages


@given(st.binary(max_size=500))
def test_split_frames_either_splits_or_raises_framing_error_on_arbitrary_bytes(
    body: bytes,
) -> None:
    try:
        frames = split_frames(body)
    except FramingError as error:
        assert 0 <= error.offset < len(body)
        assert error.frame >= 1
    else:
        assert sum(len(f) for f in frames) <= len(body)


one_line = st.binary(max_size=400).map(lambda b: b.replace(b"\n", b"") + b"\n")


@given(st.lists(one_line, min_size=1, max_size=60), st.booleans())
def test_the_all_frames_at_once_reading_equals_the_frame_by_frame_one(
    messages: list[bytes], zero_padded: bool
) -> None:
    body = b"".join((b"%05d " if zero_padded else b"%d ") % len(m) + m for m in messages)
    assert framing._split_lines(body) == framing._split_octets(body) == messages


@given(st.lists(one_line, min_size=1, max_size=20), st.data())
def test_a_damaged_body_is_left_to_the_frame_by_frame_reading(
    messages: list[bytes], data: st.DataObject
) -> None:
    body = bytearray(b"".join(b"%d " % len(m) + m for m in messages))
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] = data.draw(st.integers(0, 255))
    fast = framing._split_lines(bytes(body))
    try:
        slow: list[bytes] | None = framing._split_octets(bytes(body))
    except framing.FramingError:
        slow = None
    assert fast is None or fast == slow
