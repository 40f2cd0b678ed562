"""Read the everyday router lines of a whole drain request at once, into numpy columns.

The compiled reader (drainpipe/ingest/_scan.c, when built) reads them in one pass without a
Python object per line. It leaves any body with a router line it does not read to the
pattern below, which gives the same values (tests/ingest/test_native.py checks that).

One compiled bytes pattern runs with `findall` over the joined frames, one match per
line: the router's usual shape (the one `parse_router` reads with its fast pattern,
after a Logplex header `<PRI>1 TIMESTAMP HOST heroku router MSGID`) captures the
timestamp parts, H code, process type, connect and service times, status and response
size (numbers of up to 8 digits; longer ones go to the per-line parser); any other line matches
the catch-all and is left to the per-line parser, as are lines whose timestamp does not
name a real instant. Captured digits become numbers with numpy arithmetic, seconds of
the timestamp are converted once per distinct second by the same function the per-line
parser uses (these helpers also serve parse.bulkruntime and parse.bulkheader). Every
value read here equals what `parse_message` reads from the line;
tests/ingest/parse/test_bulk.py and tests/ingest/test_records.py check that on generated bodies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import compress
from typing import Final

import numpy as np
import numpy.typing as npt

from drainpipe.ingest.native import scan
from drainpipe.ingest.parse.dyno import process_type
from drainpipe.ingest.parse.syslog import parse_timestamp
from drainpipe.model import FloatArray, IntArray

BoolArray = npt.NDArray[np.bool_]

PRI: Final = rb"<(?>1[0-8][0-9]|19[01]|[1-9][0-9]|[0-9])>1 "  # <0> to <191>
# Seconds and offset are checked when they are converted, once per distinct value.
TIMESTAMP: Final = (
    rb"([^ ]{19})"  # YYYY-MM-DDTHH:MM:SS
    rb"(?>\.([0-9]{1,3})[0-9]*+|)"  # the ms of the fraction; further digits are truncated
    rb"([Zz]|[+-][^ ]{5}) "  # Z or +hh:mm
)
# `parse_router`'s _STANDARD with `[^ ]` classes (which sre runs fastest), possessive or
# atomic where giving back cannot lead to a match, `(?:x|)` for `(?:x)?`, and bounded
# digit runs; quoted values either without backslashes (for bodies that have none) or
# exactly as logfmt reads them. The dyno is captured up to its first dot.
_PLAIN_QUOTED: Final = rb'(?:"[^"]*+"|[^ "]*+)'
_ESCAPED_QUOTED: Final = rb'(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"|[^ "]*+)'
_ROUTER: Final = (
    rb"[^ ]++ heroku router [^ ]++ at=(?:info|warning|error)"
    rb"(?: code=H([0-9]{1,4}) desc=QUOTED|)"
    rb" method=[^ ]*+ path=QUOTED host=[^ ]*+ request_id=[^ ]*+ fwd=QUOTED"
    rb' dyno=(?:([^ ".]++)[^ "]*+|) connect=([0-9]{0,8})(?:ms|)'
    rb" service=([0-9]{0,8})(?:ms|) status=([0-9]{0,3}) bytes=([0-9]{0,8})"
    rb"(?: [^\n]*+\n|\r*+\n)"  # then protocol=, tls=, ... up to the end of the line
)
# One match per line: a router line in the usual shape, or any other line (all groups "").
_LINE: Final = PRI + TIMESTAMP + _ROUTER + rb"|[^\n]*+\n"
_PLAIN: Final = re.compile(_LINE.replace(b"QUOTED", _PLAIN_QUOTED))
_ESCAPED: Final = re.compile(_LINE.replace(b"QUOTED", _ESCAPED_QUOTED))

_ROUTER_NAME: Final = b" heroku router "
_EPOCH_SECOND: Final = b"1970-01-01T00:00:00"
_NEWLINE: Final = 10
_POWERS: Final = 10 ** np.arange(9, dtype=np.int64)
_WEIGHTS: Final = _POWERS[7::-1].copy()  # of 8 left-aligned digits
_WEIGHTS_3: Final = _POWERS[2::-1].copy()
_ZEROS_3: Final = 111 * ord("0")  # what 3 ASCII zeros weigh with _WEIGHTS_3
_LOW_NIBBLES: Final = np.uint64(0x0F0F0F0F0F0F0F0F)
_BYTE_ONES: Final = np.uint64(0x0101010101010101)


@dataclass(frozen=True, slots=True)
class RouterColumns:
    """Requests read in bulk from a request's frames, in frame order, and what is left.

    `index` holds the frame index of each request; `process_types[pt_id[i]]` is its
    process type; `service_ms`, `connect_ms` and `bytes` are NaN where the line has none,
    `code` 0 where it has none.
    `skipped` counts lines read here that carry no request (Skipped("router_line")).
    `rest` lists, in order, the frames left for the per-line parser.
    """

    index: IntArray
    ts_ms: IntArray
    service_ms: FloatArray
    status: IntArray
    code: IntArray
    pt_id: IntArray
    process_types: list[str]
    skipped: int
    rest: list[int]
    connect_ms: FloatArray
    bytes: FloatArray


def joined_lines(frames: list[bytes], joined: bytes) -> bytes:
    """The frames joined so that frame i is line i: each ends in its only newline.

    `joined` is the frames as they are, returned when they already are such lines. A
    frame without a newline gets one (the parser strips trailing newlines anyway); a
    frame with a newline before its end becomes an empty line, left to the per-line parser.
    """
    n = len(frames)
    lengths = np.fromiter(map(len, frames), np.int64, n)
    newline = np.frombuffer(joined, np.uint8) == _NEWLINE
    # n frames, none empty, each ending in a newline, and n newlines in all
    ends = np.cumsum(lengths) - 1
    if n and lengths.min() > 0 and np.count_nonzero(newline) == n and newline[ends].all():
        return joined
    lines = []
    for frame in frames:
        first = frame.find(b"\n")
        if first < 0:
            lines.append(frame + b"\n")
        elif first == len(frame) - 1:
            lines.append(frame)
        else:
            lines.append(b"\n")
    return b"".join(lines)


def _left_aligned(runs: tuple[bytes, ...]) -> tuple[IntArray, IntArray]:
    """Runs of at most 8 ASCII digits read as if padded on the right with zeros to 8
    digits (`12` -> 12000000), and how many digits each run has."""
    packed = np.array(runs, dtype="S8").view("<u8")  # padded with zero bytes
    digits = (packed & _LOW_NIBBLES).view(np.uint8).reshape(len(runs), 8)
    count = (((packed >> np.uint64(4)) & _BYTE_ONES) * _BYTE_ONES) >> np.uint64(56)
    return digits @ _WEIGHTS, count.astype(np.int64)


def _three_digits(runs: tuple[bytes, ...]) -> IntArray | None:
    """Runs of exactly 3 ASCII digits as numbers; None unless every run has 3."""
    joined = b"".join(runs)
    if len(joined) != 3 * len(runs):
        return None
    return np.frombuffer(joined, np.uint8).reshape(len(runs), 3) @ _WEIGHTS_3 - _ZEROS_3


def _numbers(runs: tuple[bytes, ...]) -> tuple[IntArray, BoolArray]:
    """Runs of at most 8 ASCII digits as numbers, and which runs are not empty."""
    left, count = _left_aligned(runs)
    return left // _POWERS[8 - count], count != 0


def fractions_ms(runs: tuple[bytes, ...]) -> IntArray:
    """The ms of fractions cut to their first 1 to 3 digits (`5` -> 500); none: 0."""
    ms = _three_digits(runs)
    return _left_aligned(runs)[0] // 100_000 if ms is None else ms


def _status(runs: tuple[bytes, ...]) -> IntArray:
    """HTTP statuses of 0 to 3 digits; 0 when empty."""
    status = _three_digits(runs)
    return _numbers(runs)[0] if status is None else status


def seconds_ms(seconds: tuple[bytes, ...]) -> tuple[IntArray | int, BoolArray | None]:
    """Epoch ms of each `YYYY-MM-DDTHH:MM:SS` (UTC), one number when all are alike, and
    which are real instants (None: all). Each distinct second is converted once: a body
    spans a few seconds, in whatever order its lines come."""
    if seconds.count(seconds[0]) == len(seconds):
        ms = parse_timestamp(seconds[0] + b"Z")
        return (0, np.zeros(len(seconds), np.bool_)) if ms is None else (ms, None)
    known = {second: parse_timestamp(second + b"Z") for second in set(seconds)}
    if None not in known.values():
        return np.fromiter(map(known.__getitem__, seconds), np.int64, len(seconds)), None
    values = [known[second] for second in seconds]
    valid = np.array([ms is not None for ms in values], np.bool_)
    return np.array([ms or 0 for ms in values], np.int64), valid


def offsets_ms(offsets: tuple[bytes, ...]) -> tuple[IntArray | int, BoolArray | None]:
    """What each `Z` or `+hh:mm` offset adds to reach UTC in ms, one number when all are
    alike, and which offsets are valid (None: all)."""
    found = {offset: parse_timestamp(_EPOCH_SECOND + offset) for offset in set(offsets)}
    if len(found) == 1:
        (ms,) = found.values()
        return (0, np.zeros(len(offsets), np.bool_)) if ms is None else (ms, None)
    values = [found[offset] for offset in offsets]
    valid = None if None not in values else np.array([ms is not None for ms in values])
    return np.array([ms or 0 for ms in values], np.int64), valid


def _process_types(heads: tuple[bytes, ...]) -> tuple[IntArray, list[str], BoolArray | None]:
    """Process type ids of dyno names cut at their first dot (none: web), the types, and
    which names are a process type (None: all)."""
    names: list[str] = []
    ids: dict[bytes, int] = {}
    for head in (heads[0],) if heads.count(heads[0]) == len(heads) else dict.fromkeys(heads):
        name = process_type(head.decode("utf-8", "replace")) if head else "web"
        if name is None:
            ids[head] = -1
            continue
        if name not in names:
            names.append(name)
        ids[head] = names.index(name)
    if len(ids) == 1 or set(ids.values()) == {0}:
        pt_id = np.full(len(heads), next(iter(ids.values())))
    else:
        pt_id = np.fromiter(map(ids.__getitem__, heads), np.int64, len(heads))
    return pt_id, names, None if -1 not in ids.values() else pt_id >= 0


def both(a: BoolArray | None, b: BoolArray | None) -> BoolArray | None:
    return a if b is None else b if a is None else a & b


# <158>1 2026-11-21T10:00:00.123456+00:00 host heroku router - at=info method=GET path="/cart" host=shop.example.com request_id=8601b555-6a54-4f5c-9c7b-9d8c2bc4b9d0 fwd="1.2.3.4" dyno=web.1 connect=1ms service=22ms status=304 bytes=656 protocol=https  # noqa: E501
def read_router(frames: list[bytes]) -> RouterColumns:
    """The requests of the usual router lines among `frames`, and the frames left over."""
    read = by_scan(frames)
    if read is not None:
        return read
    n = len(frames)
    joined = b"".join(frames)
    if _ROUTER_NAME not in joined:  # no router line, so no need to look further
        return _no_requests(n)
    return by_pattern(joined_lines(frames, joined), n)


def by_scan(frames: list[bytes]) -> RouterColumns | None:
    """`read_router` with the compiled reader; None when it is not built or leaves these
    frames to the pattern."""
    if scan is None:
        return None
    n = len(frames)
    out = np.empty((8, n), np.int64)
    dynos = scan.read_router(frames, out)
    return None if dynos is None else _scanned(n, out, dynos)


def by_pattern(joined: bytes, n: int) -> RouterColumns:
    """`read_router` of n lines joined by `joined_lines`, with the compiled pattern."""
    found = (_ESCAPED if b"\\" in joined else _PLAIN).findall(joined)
    if len(found) != n:  # a match ran over a newline: no line is read in bulk
        return _no_requests(n)
    columns = tuple(zip(*found, strict=True))
    rows = np.arange(n)
    if b"" in columns[0]:  # lines left for the per-line parser
        read = list(map(bool, columns[0]))
        rows = rows[read]
        if not len(rows):
            return _no_requests(n)
        columns = tuple(tuple(compress(column, read)) for column in columns)
    seconds, fractions, offsets, codes, heads, connects, services, statuses, sizes = columns
    second_ms, real = seconds_ms(seconds)
    offset_ms, known = offsets_ms(offsets)
    ts_ms = second_ms + offset_ms + fractions_ms(fractions)
    readable = both(real, known)  # None: all
    service, has_service = _numbers(services)
    status = _status(statuses)
    request = (status != 0) | has_service
    if codes.count(b"") == len(codes):
        code = np.zeros(len(codes), np.int64)
    else:
        code, has_code = _numbers(codes)
        request |= has_code
    pt_id, process_types, typed = _process_types(heads)
    request = both(both(request, typed), readable)
    assert request is not None
    if readable is None:
        skipped = len(rows) - int(np.count_nonzero(request))
        rest = np.flatnonzero(~np.isin(np.arange(n), rows)).tolist() if len(rows) < n else []
    else:
        skipped = int(np.count_nonzero(readable & ~request))
        done = np.zeros(n, np.bool_)
        done[rows[readable]] = True
        rest = np.flatnonzero(~done).tolist()
    service_ms = np.where(has_service, service, np.nan)
    connect_ms = _optional(connects)
    size = _optional(sizes)
    if not request.all():
        rows, ts_ms, status, code, pt_id = (
            column[request] for column in (rows, ts_ms, status, code, pt_id)
        )
        service_ms, connect_ms, size = (
            column[request] for column in (service_ms, connect_ms, size)
        )
    return RouterColumns(
        rows, ts_ms, service_ms, status, code, pt_id, process_types, skipped, rest, connect_ms, size
    )


def _optional(runs: tuple[bytes, ...]) -> FloatArray:
    """Runs of at most 8 digits as numbers, NaN where a run is empty."""
    if b"" not in runs and len(set(runs)) == 1:  # `connect=1ms` on every line, say
        return np.full(len(runs), float(runs[0]))
    values, present = _numbers(runs)
    return np.where(present, values, np.nan)


def _scanned(n: int, out: IntArray, heads: list[bytes]) -> RouterColumns:
    """RouterColumns of what the compiled reader wrote (see drainpipe/ingest/_scan.c)."""
    ts_ms, service, status, code, head_id, flags, connect, size = out
    read = (flags & 1) != 0
    if not read.any():
        return _no_requests(n)
    has_service = (flags & 2) != 0
    request = read & ((status != 0) | has_service | ((flags & 4) != 0))
    ids, names, _ = _process_types(tuple(heads))  # of each distinct head
    pt_id = ids[head_id]
    request &= pt_id >= 0
    skipped = int(np.count_nonzero(read & ~request))
    rest = np.flatnonzero(~read).tolist()
    rows = np.flatnonzero(request)
    return RouterColumns(
        rows,
        ts_ms[rows],
        np.where(has_service[rows], service[rows], np.nan),
        status[rows],
        code[rows],
        pt_id[rows],
        names,
        skipped,
        rest,
        connect.view(np.float64)[rows],  # float64 bits, NaN where absent
        size.view(np.float64)[rows],
    )


def _no_requests(n: int) -> RouterColumns:
    empty = np.zeros(0, np.int64)
    nothing = np.zeros(0)
    return RouterColumns(
        empty, empty, nothing, empty, empty, empty, [], 0, list(range(n)), nothing, nothing
    )
