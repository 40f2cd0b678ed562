"""Reading the newest records of a topic without a consumer group: what ingress restarts with.

An ingress process remembers the frame ids it accepted, so a frame stored but not
answered before a crash is recognised when Logplex sends it again. After a restart
those ids come from the frame-id topic's tail: the last `per_partition` records of
each partition, read from the high watermark back, with no group and no commit.
"""

from __future__ import annotations

import confluent_kafka
from confluent_kafka import KafkaError
from confluent_kafka import TopicPartition as KafkaPartition

from drainpipe.bus import BusUnavailable, Message
from drainpipe.bus.kafka.cluster import Cluster
from drainpipe.bus.kafka.errors import _TRANSIENT, _error_text
from drainpipe.clock import SYSTEM


def read_tail(bus: Cluster, name: str, per_partition: int) -> list[Message]:
    """The last `per_partition` records of each partition of topic `name`, each
    partition's in order; raises BusUnavailable if they cannot be read in time."""
    topic = bus.topic(name)
    reader = confluent_kafka.Consumer(
        {
            **bus.consumer_config,
            "group.id": bus.group_id("tail-reader"),  # never joined nor committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    deadline = SYSTEM.monotonic() + bus.timeout_s
    try:
        starts: list[KafkaPartition] = []
        left: set[int] = set()
        for p in range(bus.partitions):
            try:
                low, high = reader.get_watermark_offsets(
                    KafkaPartition(topic, p), timeout=bus.timeout_s
                )
            except confluent_kafka.KafkaException as exc:
                raise BusUnavailable(
                    f"cannot read the end of {topic}[{p}]: {_error_text(exc)}"
                ) from None
            if high > low:
                starts.append(KafkaPartition(topic, p, max(low, high - per_partition)))
                left.add(p)
        out: list[Message] = []
        if not starts:
            return out
        reader.assign(starts)
        while left and SYSTEM.monotonic() < deadline:
            for m in reader.consume(1000, 0.1):
                err = m.error()
                if err is None:
                    part, offset = m.partition() or 0, m.offset() or 0
                    out.append(Message(name, part, offset, m.key() or b"", m.value() or b""))
                elif err.code() == KafkaError._PARTITION_EOF:
                    left.discard(m.partition())
                elif err.code() not in _TRANSIENT:
                    raise BusUnavailable(f"cannot read the tail of {topic}: {err.str()}")
        if left:
            raise BusUnavailable(
                f"timed out after {bus.timeout_s:g} s reading the tail of {topic} "
                f"(partitions {sorted(left)} unfinished)"
            )
        return out
    finally:
        reader.close()
