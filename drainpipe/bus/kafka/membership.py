"""Consumer-group membership on Kafka: the settings a member joins with, and what it
says of its assignments and of the group errors an operator has to act on.

Failover is the session timeout plus one rebalance (docs/deploy.md, "Failover"):
cooperative-sticky assignment lets every member keep its partitions through a
rebalance, so only the partitions that change owner stop; an eager one would make every
rollup member drop all its open minutes and rebuild them from the raw log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import confluent_kafka
from confluent_kafka import KafkaError
from confluent_kafka import TopicPartition as KafkaPartition

from drainpipe.bus.kafka.cluster import Cluster

DEFAULTS: Final = {
    # A dead member's partitions move on once its session times out, and a rebalance
    # later: librdkafka's default session is far longer than a metrics stream should
    # stall (BENCHMARKS.md has the times). 8 s sits above Kafka's 6 s minimum with room
    # for seven lost heartbeats; they come from librdkafka's own thread, so a slow poll
    # does not end a session.
    "session.timeout.ms": 8_000,
    "heartbeat.interval.ms": 1_000,
    "partition.assignment.strategy": "cooperative-sticky",
}


def member_config(bus: Cluster, group_id: str) -> dict[str, Any]:
    """librdkafka settings of a member of group_id: DEFAULTS, then the operator's."""
    config: dict[str, Any] = {**DEFAULTS, **bus.consumer_config, "group.id": group_id}
    if bus.instance_id:
        # Static membership: a member that comes back under its id within the session
        # timeout gets its partitions again with no rebalance, so no other member stops
        # or rebuilds anything. It also leaves no group when it closes: its partitions
        # wait for it (or for the session to time out).
        config["group.instance.id"] = bus.instance_id
    return config


def is_cooperative(config: dict[str, Any]) -> bool:
    """Whether assignments come and go incrementally (librdkafka takes no mix of eager
    and cooperative assignors in one member)."""
    return "cooperative" in str(config["partition.assignment.strategy"])


def listing(bus: Cluster, parts: Sequence[KafkaPartition]) -> dict[str, list[int]]:
    """Partitions by topic name of `model`, for the log: which member reads what."""
    out: dict[str, list[int]] = {}
    for tp in parts:
        out.setdefault(bus.logical(tp.topic), []).append(tp.partition)
    return {topic: sorted(ps) for topic, ps in sorted(out.items())}


def error_text(
    group: str, group_id: str, instance_id: str | None, m: confluent_kafka.Message, err: KafkaError
) -> str:
    """A consume error as raised: where, what, and what to do for the group errors an
    operator causes."""
    where = f" on {m.topic()}[{m.partition()}]" if m.topic() else ""
    text = f"group {group_id}: Kafka error{where}: {err.str()}"
    if err.code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL:
        # Members of a release before cooperative assignment still hold the group.
        text += (
            "; other members of the group assign partitions another way (an older "
            f"drainpipe?): stop every {group} process, then start this version"
        )
    elif err.code() == KafkaError.FENCED_INSTANCE_ID or (
        # librdkafka raises a fenced static member's error as a fatal one (_FATAL),
        # with the broker's words in its text.
        err.fatal() and "fenced" in err.str().lower()
    ):
        text += (
            f"; another process joined as instance {instance_id!r}: give each"
            " process its own --instance-id"
        )
    return text
