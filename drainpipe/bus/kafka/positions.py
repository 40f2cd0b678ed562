"""The positions topic: committed metadata kept by drainpipe, its records, keys and reader.

Committed metadata. The rollup stores its watermark as the metadata of each committed
offset. Tansu, the broker the tests run on, accepts OffsetCommit metadata and drops it
(OffsetFetch returns null), so drainpipe keeps metadata itself, the same way on every
broker: the compacted topic `__drainpipe_positions` holds, per (group, topic, partition)
key, the offset and metadata being committed and the previous committed ones. `commit`
writes those records (acks=all) before it commits the offsets to the group (with their
metadata too, for brokers that keep it). On assignment the group's committed offset is
authoritative, and its metadata comes from the broker when it returned any, else from the
record whose offset, or previous offset, equals the committed one: a crash between the
two writes leaves the record one commit ahead, and its previous half still matches. A
record matching neither (offsets reset by an operator) gives empty metadata, logged.
Records are written only for partitions whose metadata is or was non-empty, so the
sink's commits cost one round trip and the rollup's two. A group's records share one
partition of the positions topic, read from its start to partition EOF on assignment:
compaction keeps it short on Kafka; Tansu (in memory, no compaction) lets it grow with
commits, fine for tests and development. Tansu also answers ListOffsets(latest) wrongly
for multi-record batches, so the reader stops at EOF, never at a high watermark.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

import confluent_kafka
from confluent_kafka import KafkaError
from confluent_kafka import TopicPartition as KafkaPartition

from drainpipe.bus import BusUnavailable
from drainpipe.bus.kafka.cluster import Cluster
from drainpipe.bus.kafka.errors import _TRANSIENT
from drainpipe.clock import SYSTEM

POSITIONS_TOPIC: Final = "__drainpipe_positions"


@dataclass(frozen=True, slots=True)
class _PositionRecord:
    """A value of the positions topic: the commit being made and the one before it."""

    offset: int
    metadata: str
    prev_offset: int | None
    prev_metadata: str

    def encode(self) -> bytes:
        return json.dumps(
            [self.offset, self.metadata, self.prev_offset, self.prev_metadata]
        ).encode()

    @classmethod
    def decode(cls, value: bytes) -> _PositionRecord:
        offset, metadata, prev_offset, prev_metadata = json.loads(value)
        return cls(int(offset), str(metadata), prev_offset, str(prev_metadata))

    def metadata_for(self, committed: int | None) -> str | None:
        """The metadata committed with offset `committed`, if this record knows it."""
        if self.offset == committed:
            return self.metadata
        if self.prev_offset == committed:
            return self.prev_metadata
        return None


def _position_key(group_id: str, topic: str, partition: int) -> bytes:
    return json.dumps([group_id, topic, partition]).encode()


class _PositionsReader:
    """Reads one group's partition of the positions topic (its consumer made on first use)."""

    def __init__(self, bus: Cluster, group_id: str) -> None:
        self._bus = bus
        self._group_id = group_id
        self.topic = bus.topic(POSITIONS_TOPIC)
        self.partition = bus.positions_partition(group_id)
        self._reader: confluent_kafka.Consumer | None = None

    def read(self, keys: set[bytes]) -> dict[bytes, _PositionRecord]:
        """The latest positions record of each key, reading this group's partition to EOF."""
        topic, partition = self.topic, self.partition
        if self._reader is None:
            self._reader = confluent_kafka.Consumer(
                {
                    **self._bus.consumer_config,
                    "group.id": f"{self._group_id}.positions-reader",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 10,  # an empty fetch is how EOF is learnt
                }
            )
        # Offset 0, not OFFSET_BEGINNING: no offset lookup (compaction keeps the log start).
        self._reader.assign([KafkaPartition(topic, partition, 0)])
        found: dict[bytes, _PositionRecord | None] = {}
        deadline = SYSTEM.monotonic() + self._bus.timeout_s
        while SYSTEM.monotonic() < deadline:
            for m in self._reader.consume(1000, 0.02):
                err = m.error()
                if err is None:
                    key = m.key()
                    if key in keys:
                        value = m.value()
                        found[key] = None if value is None else _PositionRecord.decode(value)
                elif err.code() == KafkaError._PARTITION_EOF:
                    return {k: v for k, v in found.items() if v is not None}
                elif err.code() not in _TRANSIENT:
                    raise BusUnavailable(
                        f"group {self._group_id}: cannot read {topic}[{partition}]: {err.str()}"
                    )
        raise BusUnavailable(
            f"group {self._group_id}: timed out reading committed metadata from "
            f"{topic}[{partition}] after {self._bus.timeout_s:g} s"
        )

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
