"""Split one RFC 5424 syslog message from Logplex into timestamp, app name, procid and text.

Logplex's layout is `<PRI>1 TIMESTAMP host APPNAME PROCID - MSG`: the `-` is the MSGID
and Logplex sends no structured data. Other senders follow RFC 5424 to the letter and put
the structured data between MSGID and MSG: log-shuttle's `... web.1 - - State changed`,
and Heroku's own `heroku logplex - - Error L10 ...`. Its NILVALUE `-` is stripped, and so
is real structured data when it is unambiguous: one or more `[SD-ID ...]` elements that
have parameters (`[id k="v"]`), or whose SD-ID is IANA-registered (timeQuality, origin,
meta) or has the private `name@number` form. App output such as `[req-42] Started GET`
therefore stays text. App output that opens with a lone `-` word (`- item`) loses it:
from a Logplex sender that is text, from an RFC 5424 sender the NILVALUE, and a line
cannot tell which.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

from drainpipe.model import Skipped

SKIP_HEADER: Final = Skipped("syslog_header")
SKIP_TIMESTAMP: Final = Skipped("timestamp")

_PRI_VERSIONS: Final = frozenset(b"<%d>1" % pri for pri in range(192))
_EPOCH_DAY: Final = date(1970, 1, 1).toordinal()
_FRACTION_SCALE: Final = (0, 100, 10, 1)  # ms per unit of a 1-, 2- or 3-digit fraction
_CACHE_LIMIT: Final = 4096
_second_ms_cache: dict[bytes, int] = {}  # "YYYY-MM-DDTHH:MM:SS" + offset -> epoch ms
_names: dict[bytes, str] = {}  # app names and procids repeat on almost every line
_SD_PARAM: Final = rb" [^\s=\]\"]{1,32}=\"(?:[^\"\\]|\\.)*\""
_SD: Final = re.compile(
    rb"(?:\[(?:(?:timeQuality|origin|meta|[^\s=\]\"@]{1,32}@[0-9]+(?:\.[0-9]+)*)"
    + rb"(?:"
    + _SD_PARAM
    + rb")*|[^\s=\]\"]{1,32}(?:"
    + _SD_PARAM
    + rb")+)\])+(?: |$)",
    re.DOTALL,
)


def _second_ms(key: bytes) -> int | None:
    """Epoch ms of `YYYY-MM-DDTHH:MM:SS` followed by `Z` or `+hh:mm`/`-hh:mm`."""
    if len(key) == 20:
        if key[19] not in b"Zz":
            return None
        offset_s = 0
    elif len(key) == 25 and key[19] in b"+-" and key[22] == 0x3A:  # ':'
        oh, om = key[20:22], key[23:25]
        if not (oh.isdigit() and om.isdigit()) or int(oh) > 23 or int(om) > 59:
            return None
        offset_s = (int(oh) * 60 + int(om)) * 60
        if key[19] == 0x2D:  # '-': local time behind UTC, add to reach UTC
            offset_s = -offset_s
    else:
        return None
    if key[4] != 0x2D or key[7] != 0x2D or key[10] not in b"Tt":  # '-' '-' 'T'
        return None
    if key[13] != 0x3A or key[16] != 0x3A:  # ':' ':'
        return None
    fields = (key[0:4], key[5:7], key[8:10], key[11:13], key[14:16], key[17:19])
    if not all(f.isdigit() for f in fields):
        return None
    year, month, day, hour, minute, second = (int(f) for f in fields)
    if hour > 23 or minute > 59 or second > 60:  # 60: a leap second, read as :59 + 1 s
        return None
    try:
        days = date(year, month, day).toordinal() - _EPOCH_DAY
    except ValueError:
        return None
    return ((days * 24 + hour) * 60 + minute) * 60_000 + (second - offset_s) * 1000


def parse_timestamp(ts: bytes) -> int | None:
    """Epoch ms (UTC) of an RFC 3339 timestamp; a fraction is truncated to whole ms."""
    fraction_ms = 0
    size = len(ts)
    if size > 20 and ts[19] == 0x2E:  # '.': a fraction sits between seconds and offset
        offset_at = size - 1 if ts[-1] in b"Zz" else size - 6
        digits = ts[20:offset_at]
        if not digits.isdigit():
            return None
        if offset_at >= 23:  # 3 or more digits, the usual case: read them as ms
            fraction_ms = ts[20] * 100 + ts[21] * 10 + ts[22] - 5328  # 5328 = 111 * ord("0")
        else:
            fraction_ms = int(digits) * _FRACTION_SCALE[offset_at - 20]
        ts = ts[:19] + ts[offset_at:]
    second_ms = _second_ms_cache.get(ts)
    if second_ms is None:
        if len(ts) < 20:
            return None
        second_ms = _second_ms(ts)
        if second_ms is None:
            return None
        if len(_second_ms_cache) >= _CACHE_LIMIT:
            _second_ms_cache.clear()
        _second_ms_cache[ts] = second_ms
    return second_ms + fraction_ms


def header_field(field: bytes) -> str:
    """A header field as text; the NILVALUE `-` becomes ""."""
    name = _names.get(field)
    if name is None:
        name = "" if field == b"-" else field.decode("utf-8", "replace")
        if len(_names) >= _CACHE_LIMIT:
            _names.clear()
        _names[field] = name
    return name


# <158>1 2026-11-21T10:00:00.123456+00:00 host heroku router - at=info method=GET path="/"
def parse_header(msg: bytes) -> tuple[int, str, str, str] | Skipped:
    """(ts_ms, appname, procid, text) of one framed message, or why it was skipped."""
    parts = msg.rstrip(b"\r\n").split(b" ", 6)
    if len(parts) < 6 or parts[0] not in _PRI_VERSIONS:
        return SKIP_HEADER
    appname, procid = parts[3], parts[4]
    if not (parts[2] and appname and procid and parts[5]):
        return SKIP_HEADER  # an empty field: two spaces in a row
    ts_ms = parse_timestamp(parts[1])
    if ts_ms is None:
        return SKIP_TIMESTAMP
    if len(parts) == 6:
        return ts_ms, header_field(appname), header_field(procid), ""
    rest = parts[6]
    if rest[:2] == b"- " or rest == b"-":  # the NILVALUE: no structured data
        rest = rest[2:]
    elif rest[:1] == b"[":
        sd = _SD.match(rest)
        if sd is not None:
            rest = rest[sd.end() :]
    return ts_ms, header_field(appname), header_field(procid), rest.decode("utf-8", "replace")
