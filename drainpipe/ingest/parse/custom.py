"""Parse l2met-style custom metrics (count#, sample#, measure#) out of an app's own lines.

l2met's older syntax, `measure.db.query=12ms` (also `count.` and `sample.`), is read as
its `#` form: apps instrumented before the `#` syntax still log it.
"""

from __future__ import annotations

import re

from drainpipe.ingest.parse.dyno import process_type
from drainpipe.model import CustomMetrics, Skipped

# The value's numeric part; a unit may follow (ms, s, MB, ...) and is not kept.
_ITEM = re.compile(
    r"(?:^|\s)(count|sample|measure)[#.]([A-Za-z0-9_.\-]{1,200})=([-+]?(?:\d+\.?\d*|\.\d+)"
    r"(?:[eE][-+]?\d+)?)?(\S*)"
)
_SOURCE = re.compile(r"(?:^|\s)source=([A-Za-z0-9_.\-]+)")
MAX_ITEMS = 64
# Values beyond this are unreadable: sums of them could overflow to infinity, which JSON
# cannot carry; no count, gauge or duration an app logs comes near it.
MAX_VALUE = 1e15


# <190>1 2026-11-21T10:00:00.123456+00:00 host app web.1 - source=web.1 measure#db.query=12.5ms
#   count#signups=1 sample#queue.depth=4
def parse_custom(ts_ms: int, procid: str, text: str) -> CustomMetrics | Skipped | None:
    """The metrics of one app line; None when it has none; Skipped when all are unreadable.

    An empty value counts as 1 (`count#hits=`); a value beyond +-MAX_VALUE is unreadable.
    The process type comes from `source=`
    when it names a dyno, else from the procid (`web.1` -> `web`).
    """
    if "#" not in text and not ("count." in text or "sample." in text or "measure." in text):
        return None
    found = _ITEM.findall(text)
    if not found:
        return None
    items: list[tuple[str, str, float]] = []
    for kind, name, number, rest in found[:MAX_ITEMS]:
        if number:
            value = float(number)
            if -MAX_VALUE <= value <= MAX_VALUE:
                items.append((name, kind, value))
        elif not rest:
            items.append((name, kind, 1.0))
    if not items:
        return Skipped("custom_metric")
    pt = None
    source = _SOURCE.search(text)
    if source is not None:
        pt = process_type(source.group(1))
    if pt is None:
        pt = process_type(procid)
    if pt is None:
        return Skipped("custom_metric")
    return CustomMetrics(ts_ms, pt, tuple(items))
