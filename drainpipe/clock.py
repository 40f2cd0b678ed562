"""The one clock of the pipeline: wall time in epoch milliseconds and monotonic seconds.

Stages compare times they got from each other: a store stamps a write, and settling asks
whether that stamp is old enough; ingress refuses lines dated too far ahead of now; the
API's default window ends now. Such comparisons hold only if every party reads the same
clock, and a test can fix the date only if nothing reads the wall clock behind it. So
every part that needs the time takes a `Clock` (the real one, `SYSTEM`, by default), and
this is the only module that reads the system's clocks.

`DRAINPIPE_CLOCK_FILE` swaps the wall clock of a whole process (and of every process
started with it) for the time written in a file, so time-driven behaviour that spans
processes, such as alerts judged minute by minute, can be rehearsed in seconds: write
the next time into the file and every stage sees it at once.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from pathlib import Path
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


class FileClock:
    """Wall time read from a file on every call: epoch milliseconds, or an ISO 8601 time
    (`2026-12-06T10:00:00Z`). Monotonic time is the machine's, so timeouts still pass."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def now_ms(self) -> int:
        try:
            raw = self.path.read_text().strip()
        except OSError as exc:
            raise ClockFileError(
                f"DRAINPIPE_CLOCK_FILE={self.path}: cannot read it ({exc.strerror}); write "
                "the time into it (epoch ms or ISO 8601), or unset it for the system clock"
            ) from None
        if raw.isdigit():
            return int(raw)
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ClockFileError(
                f"DRAINPIPE_CLOCK_FILE={self.path} holds {raw[:40]!r}: write epoch "
                "milliseconds or an ISO 8601 time with a zone (2026-12-06T10:00:00Z)"
            ) from None
        if moment.tzinfo is None:
            raise ClockFileError(
                f"DRAINPIPE_CLOCK_FILE={self.path} holds {raw!r} without a zone: add Z or +00:00"
            )
        return int(moment.timestamp() * 1000)

    def monotonic(self) -> float:
        return time.monotonic()


class ClockFileError(RuntimeError):
    pass


def _process_clock() -> Clock:
    path = os.environ.get("DRAINPIPE_CLOCK_FILE")
    return FileClock(Path(path)) if path else SystemClock()


SYSTEM: Final[Clock] = _process_clock()  # the process's clock: the machine's or the file's


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
