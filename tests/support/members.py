"""What a consumer-group member held over time, read from its `bus.assigned` and
`bus.revoked` log lines (shared by the failover test and `bench.failover`)."""

from __future__ import annotations

import calendar
import json
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Change:
    at: float  # epoch seconds, from the line's `ts`
    holding: int  # partitions held after the change
    held: frozenset[tuple[str, int]]  # (topic, partition) held after the change


def changes(log: Path) -> list[Change]:
    """Every assignment change the member logged, oldest first."""
    out: list[Change] = []
    held: set[tuple[str, int]] = set()
    for line in log.read_text(errors="replace").splitlines():
        if '"bus.assigned"' not in line and '"bus.revoked"' not in line:
            continue
        d = json.loads(line)
        if d["event"] == "bus.assigned":
            held.update((t, p) for t, ps in d["added"].items() for p in ps)
        else:
            held.difference_update((t, p) for t, ps in d["removed"].items() for p in ps)
        at = calendar.timegm(time.strptime(d["ts"][:19], "%Y-%m-%dT%H:%M:%S"))
        out.append(Change(at + int(d["ts"][20:23]) / 1000, int(d["holding"]), frozenset(held)))
    return out


def holding(log: Path) -> int:
    """Partitions the member holds now (0 before its first assignment)."""
    found = changes(log)
    return found[-1].holding if found else 0
