"""Summaries: the rolled-up state of one (owner, process type, family, period, start)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

import msgspec

from drainpipe.sketch import Sketch

MINUTE_MS: Final = 60_000


def parse_iso(raw: str) -> int | None:
    """Epoch ms of an ISO 8601 time (UTC when it names no zone; a space may stand for the
    `+` a query string decoded); None when it is not one."""
    try:
        dt = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def iso(ms: int) -> str:
    """Epoch ms as RFC 3339 UTC to the second, the form every answer and notice uses.
    Not strftime("%Y"): glibc writes year 128 as "128"."""
    t = datetime.fromtimestamp(ms // 1000, UTC)
    return t.isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------
# Summaries: the rolled-up state of one (owner, process type, family, period, start).
# ---------------------------------------------------------------------------


class Stat(msgspec.Struct, array_like=True):
    """count, sum, sum of squares, min, max: merge exactly by adding and comparing."""

    count: int = 0
    sum: float = 0.0
    sumsq: float = 0.0
    min: float = math.inf
    max: float = -math.inf


class Summary(msgspec.Struct, array_like=True):
    """Accumulated state of one window; a later version of a key always has n >= earlier."""

    owner: str
    process_type: str
    family: str
    period_s: int
    start_ms: int
    n: int = 0  # measurements merged in: versions of one key only grow
    stats: dict[str, Stat] = msgspec.field(default_factory=dict)
    sketches: dict[str, Sketch] = msgspec.field(default_factory=dict)
    counts: dict[str, int] = msgspec.field(default_factory=dict)
