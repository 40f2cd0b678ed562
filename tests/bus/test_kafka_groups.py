"""Kafka consumer groups: cooperative assignment's edges, static members, and the group
errors an operator must act on."""

from __future__ import annotations

import time
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import TopicPartition as KafkaPartition

from drainpipe.bus import BusUnavailable, Message, Position, TopicPartition
from drainpipe.bus.kafka import KafkaConsumer
from drainpipe.bus.kafka.membership import error_text
from drainpipe.model import ROUTER
from tests.bus.test_contract import Reader, kafka_bus, record


def test_a_member_with_an_instance_id_joins_its_group_as_a_static_member(
    kafka_bootstrap: str, kafka_client_tuning: dict[str, str]
) -> None:
    """The coordinator names a static member after its group.instance.id (Kafka and
    Tansu alike), a dynamic one after its client id."""
    for instance_id, named in ((None, "drainpipe-"), ("rollup.7", "rollup.7-")):
        bus = kafka_bus(kafka_bootstrap, kafka_client_tuning)
        bus.instance_id = instance_id
        try:
            member = bus.consumer("static")
            assigned: dict[TopicPartition, Position] = {}
            member.subscribe([ROUTER.topic], assigned.update)
            deadline = time.monotonic() + 30
            while not assigned and time.monotonic() < deadline:
                member.poll(1, 0.1)
            assert assigned
            assert member._consumer.memberid().startswith(named)
            member.close()
        finally:
            bus.close()


def test_joining_a_group_held_by_eager_members_fails_with_what_to_do(
    kafka_bootstrap: str, kafka_client_tuning: dict[str, str]
) -> None:
    """Members of a release before cooperative assignment keep the group; a new member
    is refused by the broker, and says to stop the old ones first."""
    bus = kafka_bus(kafka_bootstrap, kafka_client_tuning)
    old = confluent_kafka.Consumer(
        {
            **bus.consumer_config,
            "group.id": bus.group_id("rollup"),
            "partition.assignment.strategy": "range,roundrobin",
        }
    )
    try:
        held: list[int] = []
        old.subscribe([bus.topic(ROUTER.topic)], on_assign=lambda _c, ps: held.append(len(ps)))
        deadline = time.monotonic() + 30
        while not held and time.monotonic() < deadline:
            old.poll(0.1)
        assert held
        new = bus.consumer("rollup")
        new.subscribe([ROUTER.topic], lambda _: None)
        with pytest.raises(BusUnavailable, match="stop every rollup process, then start"):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                new.poll(1, 0.1)
                old.poll(0)
        new.close()
    finally:
        old.close()
        bus.close()


class RebalancingCommit:
    """The member's librdkafka consumer, whose next commit the coordinator answers as
    Kafka does between a rebalance's JoinGroup and SyncGroup."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.refuse = 1

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        if self.refuse:
            self.refuse -= 1
            raise confluent_kafka.KafkaException(
                confluent_kafka.KafkaError(confluent_kafka.KafkaError.REBALANCE_IN_PROGRESS)
            )
        return self.real.commit(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_commit_made_while_the_group_rebalances_is_left_for_the_next(
    kafka_bootstrap: str, kafka_client_tuning: dict[str, str]
) -> None:
    """Members keep reading through a cooperative rebalance, so they commit through it
    too; Kafka refuses a commit for a moment of it. That is not an outage: commit says
    False, remembers nothing as committed, and the next commit stores the positions."""
    bus = kafka_bus(kafka_bootstrap, kafka_client_tuning)
    try:
        bus.producer().send([record(ROUTER.topic, "app-a", "web", bytes([n])) for n in range(5)])
        reader = Reader(bus, "later", [ROUTER.topic])
        reader.read(5)
        tp = next(iter(reader.assigned))
        member = reader.consumer
        assert isinstance(member, KafkaConsumer)
        member._consumer = RebalancingCommit(member._consumer)  # type: ignore[assignment]
        assert member.commit({tp: Position(3, "w=1")}) is False
        assert member.commit({tp: Position(2)}) is True  # not "going back" from 3
        assert member.commit({tp: Position(5, "w=2")}) is True
        member.close()
        again = Reader(bus, "later", [ROUTER.topic])
        assert again.wait_assigned()[tp] == Position(5, "w=2")
        again.consumer.close()
    finally:
        bus.close()


class RevokeInsidePoll:
    """The member's librdkafka consumer, scripted at the library's edge: the second
    consume call returns a message of `partition`, and the third serves a revoke of that
    partition before returning, as librdkafka runs rebalance callbacks inside consume."""

    def __init__(self, real: Any, topic: str, partition: int) -> None:
        self.real, self.topic, self.partition = real, topic, partition
        self.calls = 0
        self.on_revoke: Any = None

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.on_revoke = callbacks["on_revoke"]
        self.real.subscribe(topics, **callbacks)

    def consume(self, n: int, timeout: float) -> list[Any]:
        self.calls += 1
        if self.calls == 2:
            return [confluent_kafka.Message(topic=self.topic, partition=self.partition,
                                            offset=0, key=b"k", value=b"v")]  # fmt: skip
        if self.calls == 3:
            self.on_revoke(self.real, [KafkaPartition(self.topic, self.partition)])
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_partition_revoked_late_in_a_poll_returns_none_of_its_messages(
    kafka_bootstrap: str, kafka_client_tuning: dict[str, str]
) -> None:
    """poll may call consume three times; librdkafka drops a revoked partition's messages
    within one call only, so one an earlier call returned must go too: the member that
    gets the partition reads it, and the rollup here would count it twice."""
    bus = kafka_bus(kafka_bootstrap, kafka_client_tuning)
    try:
        member = bus.consumer("late")
        real = member._consumer
        topic = bus.topic(ROUTER.topic)
        scripted = RevokeInsidePoll(real, topic, 0)
        member._consumer = scripted  # type: ignore[assignment]
        assigned: dict[TopicPartition, Position] = {}
        revoked: list[TopicPartition] = []
        member.subscribe([ROUTER.topic], assigned.update, revoked.extend)
        deadline = time.monotonic() + 30
        while not assigned and time.monotonic() < deadline:
            real.consume(1, 0.1)  # callbacks run inside, as in any poll
        assert (ROUTER.topic, 0) in assigned
        scripted.calls = 0
        got: list[Message] = member.poll(100, 0.1)
        assert revoked == [(ROUTER.topic, 0)] and scripted.calls == 3
        assert got == []
        member.close()
    finally:
        bus.close()


@pytest.mark.parametrize(
    ("err", "says"),
    [
        (
            confluent_kafka.KafkaError(confluent_kafka.KafkaError.INCONSISTENT_GROUP_PROTOCOL),
            "stop every rollup process, then start this version",
        ),
        (  # how librdkafka hands a fenced static member its error
            confluent_kafka.KafkaError(
                confluent_kafka.KafkaError._FATAL,
                "Fatal consumer error: Broker: Static consumer fenced by other consumer "
                "with same group.instance.id",
                fatal=True,
            ),
            "another process joined as instance 'rollup.1': give each process its own",
        ),
    ],
)
def test_group_errors_an_operator_causes_say_what_to_do(
    err: confluent_kafka.KafkaError, says: str
) -> None:
    text = error_text("rollup", "p.rollup", "rollup.1", confluent_kafka.Message(), err)
    assert text.startswith("group p.rollup: Kafka error: ") and says in text
