"""A one-line progress display on stderr: bar, count, live rate, ETA; a final report always.

On a terminal the line is redrawn in place at most every `interval_s`. Elsewhere (a log
file, a pipe) a plain line is written every PLAIN_EVERY_S instead, so a long run in the
background still says how far it is, without filling its log with redraws.
"""

from __future__ import annotations

import shutil
from collections import deque
from collections.abc import Callable
from typing import TextIO

from drainpipe.clock import SYSTEM

RATE_WINDOW_S = 2.0  # the live rate is measured over about this long
PLAIN_EVERY_S = 10.0  # between plain progress lines when the stream is not a terminal
BAR = 20


def duration(seconds: float) -> str:
    s = int(max(seconds, 0) + 0.5)
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


class Progress:
    def __init__(
        self,
        label: str,
        stream: TextIO,
        interval_s: float = 0.25,
        live: bool | None = None,
        clock: Callable[[], float] = SYSTEM.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream
        self.interval_s = interval_s
        self.live = stream.isatty() if live is None else live
        self.clock = clock
        self.started = clock()
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])
        self._drawn = 0.0 if self.live else self.started  # plain lines: PLAIN_EVERY_S in
        self._width = 0

    def elapsed(self) -> float:
        return self.clock() - self.started

    def rate(self, count: int) -> float:
        """Units per second over the last RATE_WINDOW_S (or since the start)."""
        now = self.clock()
        samples = self._samples
        if now - samples[-1][0] >= 0.1:
            samples.append((now, count))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_S:
            samples.popleft()
        t0, c0 = samples[0]
        return (count - c0) / (now - t0) if now > t0 else 0.0

    def update(
        self, count: int, fraction: float | None, detail: str = "", unit: str = "lines"
    ) -> None:
        """Redraw if live and due: `fraction` of the work is done (None when unknown)."""
        rate = self.rate(count)
        now = self.clock()
        if now - self._drawn < (self.interval_s if self.live else PLAIN_EVERY_S):
            return
        self._drawn = now
        parts = [self.label]
        if fraction is not None:
            f = min(max(fraction, 0.0), 1.0)
            filled = int(f * BAR)
            parts.append(f"[{'#' * filled}{'-' * (BAR - filled)}] {f * 100:5.1f}%")
        parts.append(f"{count:,} {unit}  {rate:,.0f} {unit}/s")
        if fraction and 0 < fraction < 1:
            parts.append(f"ETA {duration(self.elapsed() * (1 - fraction) / fraction)}")
        if detail:
            parts.append(detail)
        if not self.live:
            self.stream.write("  ".join(parts) + "\n")
            self.stream.flush()
            return
        text = "  ".join(parts)[: shutil.get_terminal_size((100, 20)).columns - 1]
        self.stream.write("\r" + text + " " * max(self._width - len(text), 0))
        self.stream.flush()
        self._width = len(text)

    def finish(self, report: str, out: TextIO | None = None) -> None:
        """Clear the live line and print the report (on `out`, else where progress goes)."""
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        to = out or self.stream
        to.write(report.rstrip("\n") + "\n")
        to.flush()
        self._width = 0
