"""Parsed lines: what the parsers make of one syslog message, and why a line is skipped.

Units live in names (`ts_ms`, `service_ms`); times inside drainpipe are integer epoch
milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

# ---------------------------------------------------------------------------
# Parsed lines: what the parsers return for one syslog message.
# ---------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class RouterRequest:
    """One `heroku router` line: a request the router served or failed."""

    ts_ms: int
    process_type: (
        str  # "web" for dyno=web.1; "web" when dyno is empty (the router only routes to web)
    )
    status: int  # HTTP status; 0 when absent
    service_ms: float | None  # None when the field is missing or empty
    connect_ms: float | None
    bytes: int | None
    code: str | None  # "H12" on at=error / at=warning lines, else None
    level: str  # "info" | "warning" | "error"


@dataclass(slots=True, frozen=True)
class DynoMemory:
    """One log-runtime-metrics memory sample of one dyno (MB; pgpg* in pages)."""

    ts_ms: int
    process_type: str
    source: str  # "web.1"
    memory_total: float | None
    memory_rss: float | None
    memory_cache: float | None
    memory_swap: float | None
    memory_pgpgin: float | None
    memory_pgpgout: float | None
    memory_quota: float | None


@dataclass(slots=True, frozen=True)
class DynoLoad:
    """One log-runtime-metrics load-average sample of one dyno."""

    ts_ms: int
    process_type: str
    source: str
    load_avg_1m: float | None
    load_avg_5m: float | None
    load_avg_15m: float | None


@dataclass(slots=True, frozen=True)
class PlatformEvent:
    """A platform event: release, deploy, scale, state change, crash, R14, L10 drop, ..."""

    ts_ms: int
    process_type: str  # "" for app-wide events (releases, config, scaling)
    source: str  # the syslog procid: "web.1", "api", "logplex", ...
    kind: str  # one of EVENT_KINDS
    text: str  # the message as logged
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class CustomMetrics:
    """l2met-style metrics in one line of the app's own output (count#, sample#, measure#)."""

    ts_ms: int
    process_type: str
    items: tuple[tuple[str, str, float], ...]  # (name, kind, value); kind is a CUSTOM_KINDS key


# count# adds up (its total); measure# keeps the whole distribution (a sketch too);
# sample# keeps min, mean and max per interval: unlike l2met's "last value", these merge
# exactly when minutes are downsampled or process types combined.
CUSTOM_KINDS: Final = {"count": 0, "sample": 1, "measure": 2}

# drainpipe's own counts about an app are count# metrics of reserved names, which no app
# line can produce ('@' is not a metric-name character). So they are exact like any
# metric, and kept, downsampled and expired with the app's data.
RESERVED_MARK: Final = "@"
LATE_PREFIX: Final = "@late."
SKIPPED_PREFIX: Final = "@skipped."


def late_name(family: str) -> str:
    """The reserved metric counting rows of `family` the rollup dropped as late."""
    return LATE_PREFIX + family


# Every reason a line is skipped for (`Skipped.reason`, ingress's own checks and limits):
# the API reads each one's reserved metric.
SKIP_REASONS: Final = (
    "syslog_header",  # not an RFC 5424 syslog frame
    "timestamp",  # a syslog time that does not parse
    "router_line",  # a router line that is not a request
    "runtime_metrics",  # a runtime-metrics line without its samples
    "custom_metric",  # count#, sample# or measure# items none of which reads
    "event_line",  # a platform line of a known kind that does not read
    "clock_skew",  # dated further ahead than the skew allowed
    "too_old",  # dated before the oldest time kept
    "process_type_limit",  # over the app's process type limit
    "custom_name_limit",  # over the app's custom metric name limit
)


def skipped_name(reason: str) -> str:
    """The reserved metric counting lines ingress could not use, by reason."""
    return SKIPPED_PREFIX + reason


@dataclass(slots=True, frozen=True)
class Skipped:
    """A line that could not be used; `reason` names the counter it is counted under."""

    reason: str


Record = RouterRequest | DynoMemory | DynoLoad | PlatformEvent | CustomMetrics

EVENT_KINDS: Final = (
    "release",  # Release v16 created by user ...
    "deploy",  # Deploy 059375fe by user ...
    "rollback",  # Rollback to v11 by user ...
    "config",  # Set FOO, BAR config vars ... / Remove FOO config vars ...
    "scale",  # Scaled to web@2:Standard-1X ...
    "build",  # Build started / succeeded / failed
    "state",  # State changed from starting to up
    "start",  # Starting process with command ...
    "stop",  # Stopping all processes with SIGTERM
    "exit",  # Process exited with status 137
    "restart",  # Restarting
    "cycle",  # Cycling
    "crash",  # State changed from up to crashed
    "error",  # Error R10/R12/R14/R15 (attrs["code"])
    "logplex_drop",  # Error L10 (output buffer overflow): N messages dropped
)
