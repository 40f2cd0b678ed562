"""Split a Logplex drain body into its syslog messages (RFC 6587 octet counting).

A body is `<len> <msg><len> <msg>...`: `len` is the ASCII decimal count of the bytes of
`msg` (which usually ends in a newline, kept here; the parser strips it). Whitespace
after the last frame is tolerated; anything else that breaks the framing raises
`FramingError` naming the frame (counted from 1) and the byte offset where it starts,
so that the ingress can answer 400 with a precise reason. A zero length is accepted and
yields an empty message (the parser skips it as a bad header) rather than rejecting
every other message of the body. The usual body, one line per frame, is split by the
compiled reader (drainpipe/ingest/_scan.c) when it is built, else by `_split_lines`; both give
the same frames and leave any other body to `_split_octets`.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from drainpipe.ingest.native import scan

MAX_FRAME_BYTES: Final = 1 << 20  # 1 MiB: Logplex batches aim at ~100 KB in total
MAX_PREFIX_DIGITS: Final = 7  # 1 MiB has 7 digits; a longer prefix cannot be honest
_WHITESPACE: Final = b" \t\r\n"


class FramingError(ValueError):
    """A body whose octet-counted framing is broken; the message says what and where."""

    def __init__(self, frame: int, offset: int, problem: str) -> None:
        super().__init__(f"frame {frame} at byte {offset}: {problem}")
        self.frame = frame
        self.offset = offset
        self.problem = problem


def _show(raw: bytes) -> str:
    """A byte string as printable text for an error message."""
    return repr(raw)[2:-1]


def _bad_prefix(body: bytes, pos: int, space: int) -> str:
    """Describe why the length prefix at `pos` is unusable (`space`: next space or -1)."""
    if space == pos:
        return "expected a length prefix, found a space"
    if space >= 0:
        return f"length prefix '{_show(body[pos:space])}' is not a number"
    head = body[pos : pos + MAX_PREFIX_DIGITS + 1]
    digits = len(head) - len(head.lstrip(b"0123456789"))
    if digits > MAX_PREFIX_DIGITS:
        return f"length prefix '{_show(head)}...' has more than {MAX_PREFIX_DIGITS} digits"
    if digits == len(head):
        return f"length prefix '{_show(head)}' is not followed by a space before the body ends"
    if digits:
        following = _show(head[digits : digits + 1])
        return f"length prefix '{_show(head[:digits])}' is followed by '{following}', not a space"
    return f"length prefix '{_show(head)}' is not a number"


def _split_lines(body: bytes) -> list[bytes] | None:
    """`split_frames` for the usual body, where every message is one line ending in a
    newline, checked for all frames at once; None when any frame is not like that.

    Each newline ends a frame, so the frames start after them: their prefixes are read
    and checked together (digits, then a space, and a length that reaches exactly to the
    frame's newline), and only the slicing is done per frame.
    """
    size = len(body)
    if size == 0 or body[-1] != 0x0A:
        return None
    data = np.frombuffer(body, np.uint8)
    ends = np.flatnonzero(data == 0x0A) + 1
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1]
    width = MAX_PREFIX_DIGITS + 1
    head = data[np.minimum(starts[:, None] + np.arange(width), size - 1)]
    digit = (head >= 0x30) & (head <= 0x39)
    ndigits = np.argmin(digit, axis=1)  # the first non-digit; 0 when all are digits
    if not digit[:, 0].all() or (ndigits == 0).any():
        return None
    if (head[np.arange(head.shape[0]), ndigits] != 0x20).any():
        return None
    digits = head.astype(np.int64) - 0x30
    most = int(ndigits.max())
    if most == int(ndigits.min()):  # the usual case: every prefix as long
        lengths = digits[:, :most] @ 10 ** np.arange(most - 1, -1, -1, dtype=np.int64)
    else:
        lengths = np.zeros(ndigits.size, np.int64)
        for k in range(most):
            lengths = np.where(k < ndigits, lengths * 10 + digits[:, k], lengths)
    first = starts + ndigits + 1
    if (first + lengths != ends).any() or (lengths > MAX_FRAME_BYTES).any():
        return None
    return [body[a:b] for a, b in zip(first.tolist(), ends.tolist(), strict=True)]


def split_frames(body: bytes) -> list[bytes]:
    """The messages of an octet-counted body, each exactly as framed (newline included).

    Raises FramingError on a non-numeric or over-long length prefix, a prefix not
    followed by a space, a length above MAX_FRAME_BYTES, or a length that runs past the
    end of the body.
    """
    fast = _split_lines(body) if scan is None else scan.split_lines(body)
    return fast if fast is not None else _split_octets(body)


def _split_octets(body: bytes) -> list[bytes]:
    """`split_frames` one frame after the other: any body, and the errors."""
    frames: list[bytes] = []
    append = frames.append
    find = body.find
    end = len(body)
    pos = 0
    while pos < end:
        if body[pos] in _WHITESPACE and body[pos:].isspace():
            break  # trailing newline or spaces after the last frame
        space = find(b" ", pos, pos + MAX_PREFIX_DIGITS + 1)
        if space < 0:
            raise FramingError(len(frames) + 1, pos, _bad_prefix(body, pos, space))
        prefix = body[pos:space]
        if not prefix.isdigit():
            raise FramingError(len(frames) + 1, pos, _bad_prefix(body, pos, space))
        length = int(prefix)
        if length > MAX_FRAME_BYTES:
            raise FramingError(
                len(frames) + 1,
                pos,
                f"length prefix {length} exceeds the {MAX_FRAME_BYTES}-byte limit",
            )
        start = space + 1
        stop = start + length
        if stop > end:
            raise FramingError(
                len(frames) + 1,
                pos,
                f"length {length} runs past the end of the body ({end - start} bytes left)",
            )
        append(body[start:stop])
        pos = stop
    return frames
