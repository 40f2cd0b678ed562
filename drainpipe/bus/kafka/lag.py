"""How much a consumer-group member has left to read, asked of the brokers.

From the member's read positions (its committed offsets where it has fetched nothing
yet) to the high watermarks of its partitions. One ListOffsets request for all of them,
from an admin client: the consumer's own per-partition query queues behind its
outstanding fetch on the broker connection (up to fetch.wait.max.ms each), which made a
lag check of 20 idle partitions take 10 s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import confluent_kafka
from confluent_kafka import TopicPartition as KafkaPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from drainpipe.bus import TopicPartition
from drainpipe.bus.kafka.cluster import Cluster


class EndOffsets:
    """ListOffsets for many partitions at once, from an admin client made on first use."""

    def __init__(self, bus: Cluster) -> None:
        self._bus = bus
        self._admin: AdminClient | None = None

    def unread(
        self, consumer: confluent_kafka.Consumer, committed: Mapping[TopicPartition, int | None]
    ) -> int | None:
        """Messages left in the consumer's partitions (Kafka topic names); None while it
        holds none. Raises KafkaException when the brokers do not answer."""
        parts = consumer.assignment()
        if not parts:
            return None
        high = self._ask(parts, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        at = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(parts)}
        for key, offset in list(at.items()):
            known = committed.get(key)
            if offset < 0 and known is not None:
                at[key] = known
        unfetched = [KafkaPartition(t, p) for (t, p), o in at.items() if o < 0]
        low = (
            self._ask(unfetched, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
            if unfetched
            else {}
        )
        return sum(max(0, high[k] - (o if o >= 0 else low[k])) for k, o in at.items())

    def _ask(self, parts: Sequence[KafkaPartition], spec: OffsetSpec) -> dict[TopicPartition, int]:
        if self._admin is None:
            self._admin = AdminClient(self._bus.config)
        asked = self._admin.list_offsets(
            {KafkaPartition(tp.topic, tp.partition): spec for tp in parts},
            request_timeout=self._bus.timeout_s,
        )
        return {(tp.topic, tp.partition): f.result().offset for tp, f in asked.items()}
