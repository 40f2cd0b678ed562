"""Waiting in tests for something another thread or process does: bounded, and failing
with what was awaited (and, given `detail`, what explains it, read at the failure)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def until(
    condition: Callable[[], object],
    what: str,
    timeout_s: float = 30.0,
    detail: Callable[[], str] | None = None,
    every_s: float = 0.05,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            more = f"\n{detail()}" if detail is not None else ""
            pytest.fail(f"not within {timeout_s:g} s: {what}{more}")
        time.sleep(every_s)
