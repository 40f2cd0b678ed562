"""Health of the pipeline's stages: alive, making progress, keeping up; what /healthz reports.

Each long-running stage (rollup, sink, upkeep) beats once per loop, saying whether it
has read everything there was to read. A stage is failing when it crashed and waits for
its restart, when it has not beaten for `stall_s` (stuck: a write that hangs, a disk that
does not answer), or when it has not caught up for `max_lag_s` (behind for good). While
one is failing, ingress answers 503 (Logplex keeps the lines and retries) rather than
acknowledge lines it cannot promise to count soon; /healthz answers 503 with the reason.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from drainpipe.clock import SYSTEM, Clock

STALL_S = 60.0
MAX_LAG_S = 120.0
FAILING_S = 5.0  # a write failing this long (and still retried) fails the stage


@dataclass
class Stage:
    """One stage's state, written by its thread and its supervisor, read by /healthz."""

    name: str
    clock: Clock
    state: str = "starting"  # starting | running | restarting | stopped
    restarts: int = 0
    last_error: str = ""
    last_beat: float = field(default=0.0)
    caught_up: float = field(default=0.0)
    # The rollup and sink carry lines to the store: they can fall behind, and while one
    # is failing ingress refuses lines. Upkeep only speeds reads up: /healthz shows it
    # failing, and ingress goes on.
    carries_lines: bool = True
    failing_since: float | None = None  # its writes fail and are being retried
    # A consumer with no partitions assigned since then (a rebalance that does not
    # finish): it beats and looks caught up, but nothing flows through it.
    unassigned_since: float | None = None

    def __post_init__(self) -> None:
        self.last_beat = self.caught_up = self.clock.monotonic()

    def beat(self, caught_up: bool = True, assigned: bool = True) -> None:
        now = self.clock.monotonic()
        self.last_beat = now
        if assigned:
            self.unassigned_since = None
        elif self.unassigned_since is None:
            self.unassigned_since = now
        if caught_up and assigned:
            self.caught_up = now
        if self.state == "starting":
            self.state = "running"

    def failing(self, error: BaseException) -> None:
        """A write failed and will be retried (the stage itself runs on)."""
        self.last_error = f"{type(error).__name__}: {error}"
        if self.failing_since is None:
            self.failing_since = self.clock.monotonic()

    def recovered(self) -> None:
        self.failing_since = None

    def crashed(self, error: BaseException) -> None:
        self.state = "restarting"
        self.last_error = f"{type(error).__name__}: {error}"

    def restarted(self) -> None:
        self.restarts += 1
        self.state = "starting"
        self.failing_since = None
        self.last_beat = self.caught_up = self.clock.monotonic()

    def problem(self, stall_s: float, max_lag_s: float) -> str | None:
        """Why this stage is failing, or None."""
        now = self.clock.monotonic()
        if self.state == "restarting":
            return f"{self.name} crashed ({self.last_error}) and is being restarted"
        if self.state == "stopped":
            return None
        if self.failing_since is not None and now - self.failing_since >= FAILING_S:
            took = now - self.failing_since
            return f"{self.name} has failed to write for {took:.0f} s ({self.last_error})"
        if now - self.last_beat > stall_s:
            return f"{self.name} has made no progress for {now - self.last_beat:.0f} s"
        if self.unassigned_since is not None and now - self.unassigned_since > max_lag_s:
            return (
                f"{self.name} has had no partitions for {now - self.unassigned_since:.0f} s "
                "(a rebalance that does not finish, or more members than partitions)"
            )
        if self.carries_lines and now - self.caught_up > max_lag_s:
            return f"{self.name} has been behind for {now - self.caught_up:.0f} s"
        return None


class Health:
    """The stages of one process, and the verdict on them."""

    def __init__(
        self, clock: Clock = SYSTEM, stall_s: float = STALL_S, max_lag_s: float = MAX_LAG_S
    ) -> None:
        self.clock = clock
        self.stall_s = stall_s
        self.max_lag_s = max_lag_s
        self._stages: dict[str, Stage] = {}
        self._lock = threading.Lock()

    def stage(self, name: str, carries_lines: bool = True) -> Stage:
        with self._lock:
            if name not in self._stages:
                self._stages[name] = Stage(name, self.clock, carries_lines=carries_lines)
            return self._stages[name]

    def problem(self) -> str | None:
        """Why ingress must not acknowledge lines now: the first failing stage of those
        that carry them (the rollup and the sink), or None."""
        for s in list(self._stages.values()):
            if not s.carries_lines:
                continue
            reason = s.problem(self.stall_s, self.max_lag_s)
            if reason is not None:
                return reason
        return None

    def report(self) -> dict[str, Any]:
        """What /healthz shows: a verdict, and each stage's state, lag and restarts."""
        now = self.clock.monotonic()
        stages: dict[str, Any] = {}
        problems = []
        for s in list(self._stages.values()):
            reason = s.problem(self.stall_s, self.max_lag_s)
            if reason is not None:
                problems.append(reason)
            stages[s.name] = {
                "state": s.state,
                "ok": reason is None,
                "seconds_since_progress": round(now - s.last_beat, 1),
                "seconds_behind": round(now - s.caught_up, 1) if s.carries_lines else 0.0,
                "restarts": s.restarts,
                "last_error": s.last_error or None,
            }
        return {"status": "failing" if problems else "ok", "problems": problems, "stages": stages}
