"""Split the syslog headers of a drain request's lines at once, as parse_header splits one.

For the lines that neither bulk reader took (events, app output, odd lines): one
compiled bytes pattern runs with `findall` over the joined frames, one match per line,
and captures the timestamp parts, app name, procid and text of each line with the usual
header (`<PRI>1 TIMESTAMP HOST APPNAME PROCID MSGID TEXT`, no structured data).
Timestamps are converted once per distinct second, as in parse.bulkrouter. Lines with any
other header, structured data, or a timestamp that names no instant are left to
`parse_header`. tests/ingest/test_records.py checks the result against it on generated bodies.
"""

from __future__ import annotations

import re
from typing import Final

from drainpipe.ingest.parse.bulkrouter import (
    PRI,
    TIMESTAMP,
    both,
    fractions_ms,
    joined_lines,
    offsets_ms,
    seconds_ms,
)
from drainpipe.ingest.parse.syslog import header_field

Header = tuple[int, str, str, str]  # (ts_ms, appname, procid, text) as parse_header gives
# No field may be empty (parse_header skips the line then); text that opens with `[` or
# `-` may be structured data or its NILVALUE, which parse_header alone decides about.
_LINE: Final = re.compile(
    PRI + TIMESTAMP + rb"[^ \n]++ ([^ \n]++) ([^ \n]++) [^ \n]++ (?![\[-])([^\n]*+)\n|[^\n]*+\n"
)


# <190>1 2026-11-21T10:00:00.123456+00:00 host app api - Release v16 created by user a@example.com
def read_headers(frames: list[bytes]) -> list[Header | None]:
    """The header of each frame as parse_header splits it; None: left to parse_header."""
    n = len(frames)
    if not n:
        return []
    joined = joined_lines(frames, b"".join(frames))
    found = _LINE.findall(joined)
    if len(found) != n:  # a match ran over a newline: no line is read in bulk
        return [None] * n
    read = [i for i, groups in enumerate(found) if groups[3]]  # appname: usual header
    if not read:
        return [None] * n
    if len(read) < n:
        found = [found[i] for i in read]
    seconds, fractions, offsets, appnames, procids, texts = zip(*found, strict=True)
    second_ms, real = seconds_ms(seconds)
    offset_ms, known = offsets_ms(offsets)
    ts_ms: list[int] = (second_ms + offset_ms + fractions_ms(fractions)).tolist()
    readable = both(real, known)
    usable = [True] * len(read) if readable is None else readable.tolist()
    if b"\r" in joined:  # parse_header strips trailing \r with the newline
        texts = tuple(text.rstrip(b"\r") for text in texts)
    headers: list[Header | None] = [None] * n
    for i, ts, appname, procid, text, ok in zip(
        read, ts_ms, appnames, procids, texts, usable, strict=True
    ):
        if ok:
            text_str = text.decode("utf-8", "replace")
            headers[i] = (ts, header_field(appname), header_field(procid), text_str)
    return headers
