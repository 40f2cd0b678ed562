"""The one clock of the pipeline: wall time in epoch milliseconds and monotonic seconds.

Stages compare times they got from each other: a store stamps a write, and settling asks
whether that stamp is old enough; ingress refuses lines dated too far ahead of now; the
API's default window ends now. Such comparisons hold only if every party reads the same
clock, and a test can fix the date only if nothing reads the wall clock behind it. So
every part that needs the time takes a `Clock` (the real one, `SYSTEM`, by default), and
this is the only module that reads the system's clocks.
"""

from __future__ import annotations

import threading
import time
from typing import Final, Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall time: milliseconds since the Unix epoch, UTC."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never go back: for intervals and deadlines."""


class SystemClock:
    """The machine's clocks."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM: Final = SystemClock()


class FixedClock:
    """A wall clock that shows what it was set to until it is set or advanced again.

    Intervals still pass in real time (`monotonic` is the machine's), so stages that flush
    or poll on a schedule keep running while the date stands still.
    """

    def __init__(self, now_ms: int) -> None:
        self._now_ms = now_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now_ms

    def set(self, now_ms: int) -> None:
        with self._lock:
            self._now_ms = now_ms

    def advance(self, ms: int) -> None:
        with self._lock:
            self._now_ms += ms

    def monotonic(self) -> float:
        return SYSTEM.monotonic()
