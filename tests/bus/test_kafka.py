"""The Kafka bus beyond the contract: commits on revoke, positions records, closing sends."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

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
    them twice. The rollup and the sink rely on this; `test_kafka_groups` covers a revoke
    served by the last of a poll's consume calls."""
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
