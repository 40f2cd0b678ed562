"""Bus messages: raw-topic schemas and batches, topic names, keys and the partitioner.

A raw-topic message is one columnar batch of one measurement type for one (owner,
process type); columns are little-endian numpy buffers in schema order.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from drainpipe.model.summary import Summary

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
# One column of a columnar batch: event times, values, status or H codes.
Column = FloatArray | IntArray | npt.NDArray[np.int16]

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
    # Float columns appended to the topic after its first batches were written: a batch
    # may lack these last ones, which then read as NaN (absent), so old logs replay.
    appended: int = 0

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
        # Appended later: batches written before have four columns, read as NaN here.
        ("connect_ms", "<f8"),  # NaN when absent
        ("bytes", "<f8"),  # response size; NaN when absent
    ),
    appended=2,
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


class RawBatch(msgspec.Struct, array_like=True, frozen=True):
    """A columnar batch on a raw measurement topic."""

    owner: str
    process_type: str
    columns: list[bytes]
    series: str = ""  # custom metrics: the metric name (a batch holds one)
    # The drain request's Logplex-Frame-Id: the rollup drops a second copy of a batch of
    # a retried frame (accepted by two ingress processes). Older batches have none.
    frame: str = ""


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
