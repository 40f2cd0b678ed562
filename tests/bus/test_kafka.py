"""The Kafka bus beyond the contract: commits on revoke, positions records, closing sends."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import confluent_kafka
import pytest

from drainpipe.bus import (
    BusUnavailable,
    Position,
    TopicPartition,
)
from drainpipe.bus.kafka import KafkaConsumer, _PositionRecord
from drainpipe.model import (
    ROUTER,
    partition_for,
    partition_key,
)
from tests.bus.test_contract import (
    PARTITIONS,
    SERIES,
    Reader,
    kafka_bus,
    record,
)


def test_kafka_commits_in_on_revoke_and_survives_a_crash_inside_commit(
    kafka_bootstrap: str, kafka_client_tuning: dict[str, str]
) -> None:
    """close() revokes: the rollup commits there. Then a crash between a commit's two writes.

    commit() writes the positions record, then the group offset; here the record of offset
    8 is written and the offset commit never happens, so 5 and its metadata must stand.
    """
    bus = kafka_bus(kafka_bootstrap, kafka_client_tuning)
    try:
        owner, pt = SERIES[3]
        tp = (ROUTER.topic, partition_for(partition_key(owner, pt), PARTITIONS))
        bus.producer().send([record(ROUTER.topic, owner, pt) for _ in range(9)]).result(20)
        revoked: list[TopicPartition] = []
        consumer: KafkaConsumer

        def on_revoke(tps: Sequence[TopicPartition]) -> None:
            consumer.commit({tp: Position(5, "wm=1")})
            consumer._write_positions({(bus.topic(tp[0]), tp[1]): Position(8, "wm=2")})
            revoked.extend(tps)

        reader = Reader(bus, "crash", [ROUTER.topic], on_revoke)
        assert isinstance(reader.consumer, KafkaConsumer)
        consumer = reader.consumer
        reader.wait_assigned()
        consumer.close()
        assert tp in revoked

        again = Reader(bus, "crash", [ROUTER.topic])
        assert again.wait_assigned()[tp] == Position(5, "wm=1")
        assert [m.offset for m in again.read(4) if (m.topic, m.partition) == tp] == [5, 6, 7, 8]
    finally:
        bus.close()


def test_kafka_positions_record_matches_committed_or_previous_offset_only() -> None:
    rec = _PositionRecord(offset=8, metadata="wm=2", prev_offset=5, prev_metadata="wm=1")
    assert rec.metadata_for(8) == "wm=2"
    assert rec.metadata_for(5) == "wm=1"
    assert rec.metadata_for(3) is None  # offsets reset by an operator: no metadata
    assert _PositionRecord.decode(rec.encode()) == rec


class HeldProduce:
    """The Kafka pipe's librdkafka producer, with each produce() held until `go` is set."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.inside = threading.Event()
        self.go = threading.Event()

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self.inside.set()
        assert self.go.wait(20)
        self.real.produce(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def __len__(self) -> int:
        return len(self.real)


def test_a_send_caught_by_a_close_ends_stored_or_refused_never_waiting(
    kafka_bootstrap: str, kafka_client_tuning: dict[str, str]
) -> None:
    bus = kafka_bus(kafka_bootstrap, kafka_client_tuning)
    producer = bus.producer()
    producer.send([record(ROUTER.topic, "app-a", "web")]).result(timeout=20)
    pipe = bus.pipe()
    held = HeldProduce(pipe._producer)
    pipe._producer = held  # type: ignore[assignment]  # a proxy of the real producer
    sent: list[Future[None]] = []
    sender = threading.Thread(
        target=lambda: sent.append(producer.send([record(ROUTER.topic, "app-a", "web")]))
    )
    sender.start()
    assert held.inside.wait(20)  # the send has passed its closed check and is producing
    closer = threading.Thread(target=bus.close)
    closer.start()
    time.sleep(0.5)  # let close run as far as it can while the record is not yet queued
    held.go.set()
    sender.join(20)
    closer.join(30)
    (future,) = sent
    # Queued after the delivery thread stopped, it would wait forever.
    exc = future.exception(timeout=20)
    assert exc is None or isinstance(exc, BusUnavailable)


def test_kafka_poll_returns_nothing_of_a_partition_revoked_during_it(
    kafka_bootstrap: str, kafka_client_tuning: dict[str, str]
) -> None:
    """A revoke served inside `poll` leaves no message of the revoked partitions in what
    it returns (librdkafka drops the fetched ones): the member that gets a partition, or
    this one when it comes back, reads them from the commit, and the rollup would count
    them twice. The rollup relies on this; the sink also filters them itself."""
    bus = kafka_bus(kafka_bootstrap, kafka_client_tuning)
    try:
        owners = [f"app-{i}" for i in range(40)]
        bus.producer().send(
            [record(ROUTER.topic, o, "web", bytes([n])) for n in range(20) for o in owners]
        ).result(20)
        revoked_now: set[TopicPartition] = set()
        first = bus.consumer("moves")
        assigned: list[int] = []
        first.subscribe([ROUTER.topic], lambda a: assigned.append(len(a)), revoked_now.update)
        deadline = time.monotonic() + 20
        while not assigned and time.monotonic() < deadline:
            first.poll(1, 0.1)  # one at a time: the rest waits in the local queue
        assert assigned
        time.sleep(0.5)
        second = Reader(bus, "moves", [ROUTER.topic])
        stale = revokes = 0
        deadline = time.monotonic() + 30
        while not second.assigned and time.monotonic() < deadline:
            revoked_now.clear()
            got = first.poll(100, 0.05)
            if revoked_now:
                revokes += 1
                stale += sum((m.topic, m.partition) in revoked_now for m in got)
            second._buffer.extend(second._poll(100, 0.05))
        assert second.assigned and revokes
        assert stale == 0
        first.close()
        second.consumer.close()
    finally:
        bus.close()


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
