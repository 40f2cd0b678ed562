"""Derive the process type of a dyno from its name: `web.1` -> `web`, `run.1234` -> `run`."""

from __future__ import annotations

import re
from typing import Final

_PROCESS_TYPE: Final = re.compile(r"[a-z0-9_-]+")
_CACHE_LIMIT: Final = 4096
_cache: dict[str, str | None] = {}  # dyno names repeat on every line of a dyno


def process_type(dyno: str) -> str | None:
    """The part of `dyno` before the first dot, lowercased; None unless it is [a-z0-9_-]+."""
    try:
        return _cache[dyno]
    except KeyError:
        pass
    head = dyno.partition(".")[0]
    name = head.lower()
    found = name if head.isascii() and _PROCESS_TYPE.fullmatch(name) else None
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[dyno] = found
    return found
