"""Shared types that flow between stages: parsed lines, bus batches, summaries and their keys.

Units live in names (`ts_ms`, `service_ms`); times inside drainpipe are integer epoch
milliseconds. Every other module imports its vocabulary from here, so the stages agree
on one meaning for each field.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Final

import msgspec

from drainpipe.sketch import Sketch

MINUTE_MS: Final = 60_000

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

# ---------------------------------------------------------------------------
# Bus messages: a raw-topic message is one columnar batch of one measurement type for
# one (owner, process type). Columns are little-endian numpy buffers in schema order.
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schema:
    """A raw measurement topic: its name (with version), rollup family and columns."""

    topic: str
    family: str
    columns: tuple[tuple[str, str], ...]  # (name, numpy dtype)

    @property
    def summary_topic(self) -> str:
        name, _, version = self.topic.rpartition(".")
        return f"{name}_SUMMARY.{version}"


ROUTER: Final = Schema(
    "ROUTER_REQUESTS.v1",
    "router",
    (
        ("ts_ms", "<i8"),
        ("service_ms", "<f8"),  # NaN when absent
        ("status", "<i2"),  # 0 when absent
        ("code", "<i2"),  # H code number (H12 -> 12); 0 when none
    ),
)
MEMORY: Final = Schema(
    "DYNO_MEMORY.v1",
    "dyno.memory",
    (
        ("ts_ms", "<i8"),
        ("memory_total", "<f8"),
        ("memory_rss", "<f8"),
        ("memory_cache", "<f8"),
        ("memory_swap", "<f8"),
        ("memory_quota", "<f8"),
    ),
)
LOAD: Final = Schema(
    "DYNO_LOAD.v1",
    "dyno.load",
    (
        ("ts_ms", "<i8"),
        ("load_avg_1m", "<f8"),
        ("load_avg_5m", "<f8"),
        ("load_avg_15m", "<f8"),
    ),
)
CUSTOM: Final = Schema(
    "CUSTOM_METRICS.v1",
    "custom",  # the rollup family is "custom." + the batch's series (the metric name)
    (
        ("ts_ms", "<i8"),
        ("value", "<f8"),
        ("kind", "<i1"),  # CUSTOM_KINDS
    ),
)
SCHEMAS: Final = (ROUTER, MEMORY, LOAD, CUSTOM)
SCHEMA_BY_TOPIC: Final = {s.topic: s for s in SCHEMAS}
SCHEMA_BY_FAMILY: Final = {s.family: s for s in SCHEMAS}


def schema_of_family(family: str) -> Schema:
    """The raw schema a summary family comes from: `custom.<name>` families are CUSTOM's."""
    return CUSTOM if family.startswith("custom.") else SCHEMA_BY_FAMILY[family]


EVENTS_TOPIC: Final = "PLATFORM_EVENTS.v1"
# Logplex-Frame-Id of every accepted drain request (key: owner|, value: the id), written
# in the same durable append as its measurements, so retries are recognised after a restart.
FRAMES_TOPIC: Final = "DRAIN_FRAMES.v1"
SUMMARY_TOPICS: Final = tuple(s.summary_topic for s in SCHEMAS)


def retry_topic(summary_topic: str) -> str:
    return f"RETRY.{summary_topic}"


class Batch(msgspec.Struct, array_like=True, frozen=True):
    """A columnar batch on a raw measurement topic."""

    owner: str
    process_type: str
    columns: list[bytes]
    series: str = ""  # custom metrics: the metric name (a batch holds one)


class EventRecord(msgspec.Struct, array_like=True, frozen=True):
    ts_ms: int
    process_type: str
    source: str
    kind: str
    text: str
    attrs: dict[str, str]


class EventBatch(msgspec.Struct, array_like=True, frozen=True):
    """A batch of platform events of one (owner, process type)."""

    owner: str
    process_type: str
    events: list[EventRecord]


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


SEP: Final = "|"


def partition_key(owner: str, process_type: str) -> bytes:
    return f"{owner}{SEP}{process_type}".encode()


def summary_key(s: Summary) -> bytes:
    return (
        f"{s.owner}{SEP}{s.process_type}{SEP}{s.family}{SEP}{s.period_s}{SEP}{s.start_ms}"
    ).encode()


def partition_for(key: bytes, partitions: int) -> int:
    """Partition of a message key by its owner and process type only.

    Summary keys carry family, period and start after the second separator; they are
    ignored so that every version of a key, and all of a series, stays on one partition.
    """
    first = key.find(b"|")
    second = key.find(b"|", first + 1) if first >= 0 else -1
    head = key if second < 0 else key[:second]
    return zlib.crc32(head) % partitions
