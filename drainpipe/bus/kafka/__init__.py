"""The Kafka bus: the bus contract on Apache Kafka (or a Kafka-protocol broker) via confluent-kafka.

Modules, in the order data meets them:
- `bus`: `KafkaBus`, its configuration, topic names and prefix, the topic layout
  created at start, the compression probe, and the clients it hands out.
- `producer`: the bus's one shared librdkafka producer, its delivery reports, and the
  `KafkaProducer` handles that send through it.
- `consumer`: `KafkaConsumer`, one consumer-group member: assignment, polling, commits.
- `membership`: the settings a member joins its group with (cooperative-sticky, an
  8 s session, an optional instance id), and the group errors an operator acts on.
- `lag`: what a member has left to read, from one ListOffsets request.
- `positions`: the compacted `__drainpipe_positions` topic that keeps committed
  metadata (Tansu drops it): its records, their keys, and reading them back.
- `tail`: the newest records of a topic, read without a group (frame ids at start).
- `errors`: which Kafka errors are transient, their text, client error reports.
"""

from __future__ import annotations

from drainpipe.bus.kafka.bus import COMPRESSION, KafkaBus, topic_layout
from drainpipe.bus.kafka.consumer import KafkaConsumer
from drainpipe.bus.kafka.positions import POSITIONS_TOPIC
from drainpipe.bus.kafka.positions import _PositionRecord as _PositionRecord  # for tests
from drainpipe.bus.kafka.producer import KafkaProducer

__all__ = [
    "COMPRESSION",
    "POSITIONS_TOPIC",
    "KafkaBus",
    "KafkaConsumer",
    "KafkaProducer",
    "topic_layout",
]
