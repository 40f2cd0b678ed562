"""One suite for every bus: the contract of `drainpipe.bus`, on the embedded WAL and on Kafka."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drainpipe import codec
from drainpipe.bus import (
    Bus,
    BusUnavailable,
    Consumer,
    Message,
    OnRevoke,
    OutRecord,
    Position,
    TopicPartition,
)
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.bus.kafka import KafkaBus
from drainpipe.model import (
    EVENTS_TOPIC,
    LOAD,
    MEMORY,
    MINUTE_MS,
    ROUTER,
    Summary,
    partition_for,
    partition_key,
    retry_topic,
    summary_key,
)

PARTITIONS = 4
T0 = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS
SERIES = [("app-a", "web"), ("app-a", "worker"), ("app-b", "web"), ("app-c", "web")]
_unique = itertools.count()


@dataclass
class BusKit:
    """Opens the bus under test; every open of one kit sees the same data."""

    kind: str
    make: Callable[[int], Bus]
    opened: list[Bus] = field(default_factory=list)

    def open(self, partitions: int = PARTITIONS) -> Bus:
        bus = self.make(partitions)
        self.opened.append(bus)
        return bus


def kafka_bus(
    bootstrap: str,
    tuning: dict[str, str],
    partitions: int = PARTITIONS,
    prefix: str | None = None,
) -> KafkaBus:
    """A Kafka bus of the tests: single replicas, topics under a prefix of its own."""
    return KafkaBus(
        bootstrap,
        partitions=partitions,
        replication=1,
        extra=tuning,
        topic_prefix=prefix or f"test-{uuid.uuid4().hex[:10]}.",
        timeout_s=20,
    )


@pytest.fixture(params=["embedded", "kafka"])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BusKit]:
    if request.param == "embedded":

        def make(partitions: int) -> Bus:
            return EmbeddedBus(tmp_path / "bus", partitions)

    else:
        bootstrap: str = request.getfixturevalue("kafka_bootstrap")
        tuning: dict[str, str] = request.getfixturevalue("kafka_client_tuning")
        prefix = f"test-{uuid.uuid4().hex[:10]}."

        def make(partitions: int) -> Bus:
            return kafka_bus(bootstrap, tuning, partitions, prefix)

    kit = BusKit(request.param, make)
    yield kit
    for bus in reversed(kit.opened):
        bus.close()


class Reader:
    """A subscribed consumer that checks each message's partition was reported first."""

    def __init__(
        self, bus: Bus, group: str, topics: list[str], on_revoke: OnRevoke | None = None
    ) -> None:
        self.consumer: Consumer = bus.consumer(group)
        self.assigned: dict[TopicPartition, Position] = {}
        self._buffer: list[Message] = []
        self.consumer.subscribe(topics, self.assigned.update, on_revoke)

    def _poll(self, n: int, timeout_s: float) -> list[Message]:
        got = self.consumer.poll(n, timeout_s)
        for m in got:
            assert (m.topic, m.partition) in self.assigned, f"{m} came before its assignment"
        return got

    def wait_assigned(self, timeout_s: float = 20.0) -> dict[TopicPartition, Position]:
        deadline = time.monotonic() + timeout_s
        while not self.assigned and time.monotonic() < deadline:
            self._buffer.extend(self._poll(1000, 0.1))
        assert self.assigned, f"no partitions assigned within {timeout_s} s"
        return self.assigned

    def read(self, n: int, timeout_s: float = 20.0) -> list[Message]:
        """Exactly the next n messages (fails if fewer come within timeout_s)."""
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            out.extend(self._poll(n - len(out), 0.1))
        assert len(out) == n, f"read {len(out)} of {n} messages within {timeout_s} s"
        return out

    def read_nothing(self, wait_s: float = 0.3) -> None:
        extra = self._buffer + self._poll(1000, wait_s)
        assert extra == [], f"expected no more messages, got {extra}"


def record(topic: str, owner: str, process_type: str, payload: bytes = b"") -> OutRecord:
    value = b"%d|" % next(_unique) + payload
    return OutRecord(topic, partition_key(owner, process_type), value)


def summary_record(owner: str, process_type: str, start_ms: int, n: int) -> OutRecord:
    s = Summary(owner, process_type, ROUTER.family, 60, start_ms, n=n)
    return OutRecord(ROUTER.summary_topic, summary_key(s), codec.encode_summary(s))


def by_partition(messages: list[Message]) -> dict[TopicPartition, list[Message]]:
    out: dict[TopicPartition, list[Message]] = {}
    for m in messages:
        out.setdefault((m.topic, m.partition), []).append(m)
    return out


def test_records_come_back_in_send_order_on_their_key_partition(kit: BusKit) -> None:
    bus = kit.open()
    producer = bus.producer()
    reader = Reader(bus, "order", [ROUTER.topic, MEMORY.topic])
    reader.wait_assigned()

    @settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.tuples(
                st.sampled_from([ROUTER.topic, MEMORY.topic]),
                st.sampled_from(SERIES),
                st.binary(max_size=64),
            ),
            min_size=1,
            max_size=25,
        )
    )
    def check(batch: list[tuple[str, tuple[str, str], bytes]]) -> None:
        records = [record(topic, owner, pt, payload) for topic, (owner, pt), payload in batch]
        producer.send(records).result(timeout=20)
        got = reader.read(len(records))
        for m in got:
            assert m.partition == partition_for(m.key, PARTITIONS)
        for (topic, partition), msgs in by_partition(got).items():
            sent = [
                r.value
                for r in records
                if r.topic == topic and partition_for(r.key, PARTITIONS) == partition
            ]
            assert [m.value for m in msgs] == sent
            offsets = [m.offset for m in msgs]
            assert offsets == sorted(set(offsets))

    check()


def test_every_version_of_a_series_lands_on_the_series_partition(kit: BusKit) -> None:
    bus = kit.open()
    records = [
        summary_record(owner, pt, T0 + minute * MINUTE_MS, n)
        for n in (1, 2)
        for minute in range(5)
        for owner, pt in SERIES
    ]
    bus.producer().send(records).result(timeout=20)
    got = Reader(bus, "series", [ROUTER.summary_topic]).read(len(records))
    for owner, pt in SERIES:
        mine = [
            m
            for m in got
            if codec.decode_summary(m.value).owner == owner
            and codec.decode_summary(m.value).process_type == pt
        ]
        assert {m.partition for m in mine} == {partition_for(partition_key(owner, pt), PARTITIONS)}
        sent = [r.value for r in records if r.key.startswith(partition_key(owner, pt) + b"|")]
        assert [m.value for m in mine] == sent  # versions of each key stay in order


LARGE_METADATA = "wm=1795000000000;next=9;keys=" + json.dumps(
    [[f"{i:032x}", "web", 1_795_000_000_000 + i] for i in range(200)]
)  # ~11 kB: over Kafka's offset.metadata.max.bytes, so it lives in the positions topic


@pytest.mark.parametrize("metadata", ["wm=1795000000000", LARGE_METADATA], ids=["small", "large"])
def test_committed_positions_and_metadata_survive_reopening(kit: BusKit, metadata: str) -> None:
    bus = kit.open()
    owner, pt = SERIES[0]
    part = partition_for(partition_key(owner, pt), PARTITIONS)
    records = [record(ROUTER.topic, owner, pt) for _ in range(10)]
    bus.producer().send(records).result(timeout=20)
    reader = Reader(bus, "rollup", [ROUTER.topic])
    first = reader.read(10)
    assert reader.assigned[(ROUTER.topic, part)] == Position(0, "")
    committed = Position(first[7].offset, metadata)
    reader.consumer.commit({(ROUTER.topic, part): committed})
    reader.consumer.close()
    bus.close()

    again = Reader(kit.open(), "rollup", [ROUTER.topic])
    assigned = again.wait_assigned()
    assert assigned[(ROUTER.topic, part)] == committed
    assert all(pos == Position(0, "") for tp, pos in assigned.items() if tp[1] != part)
    assert [m.value for m in again.read(3)] == [r.value for r in records[7:]]
    again.read_nothing()


def test_consumer_groups_read_independently(kit: BusKit) -> None:
    bus = kit.open()
    records = [record(LOAD.topic, owner, pt) for owner, pt in SERIES for _ in range(2)]
    bus.producer().send(records).result(timeout=20)
    a = Reader(bus, "group-a", [LOAD.topic])
    got_a = a.read(len(records))
    a.consumer.commit({(m.topic, m.partition): Position(m.offset + 1) for m in got_a})
    a.consumer.close()

    b = Reader(bus, "group-b", [LOAD.topic])  # group-a's commits do not move group-b
    assert sorted(m.value for m in b.read(len(records))) == sorted(r.value for r in records)
    assert all(pos == Position(0, "") for pos in b.assigned.values())


def test_commit_going_backwards_raises(kit: BusKit) -> None:
    bus = kit.open()
    owner, pt = SERIES[1]
    tp = (ROUTER.topic, partition_for(partition_key(owner, pt), PARTITIONS))
    bus.producer().send([record(ROUTER.topic, owner, pt) for _ in range(6)]).result(timeout=20)
    reader = Reader(bus, "backwards", [ROUTER.topic])
    reader.wait_assigned()
    reader.consumer.commit({tp: Position(5, "wm=2")})
    with pytest.raises(ValueError, match="back"):
        reader.consumer.commit({tp: Position(3, "wm=3")})
    reader.consumer.commit({tp: Position(5, "wm=2")})  # the same position again is fine
    reader.consumer.close()

    again = Reader(bus, "backwards", [ROUTER.topic])
    assert again.wait_assigned()[tp] == Position(5, "wm=2")
    with pytest.raises(ValueError, match="back"):
        again.consumer.commit({tp: Position(4, "")})
    again.consumer.commit({tp: Position(6, "wm=4")})


def test_send_completes_only_when_the_records_are_readable(kit: BusKit) -> None:
    bus = kit.open()
    records = [record(ROUTER.topic, owner, pt) for owner, pt in SERIES for _ in range(10)]
    future = bus.producer().send(records)
    assert future.result(timeout=20) is None
    fresh = Reader(bus, f"fresh-{uuid.uuid4().hex[:8]}", [ROUTER.topic])
    assert sorted(m.value for m in fresh.read(len(records))) == sorted(r.value for r in records)


def test_one_send_may_span_topics(kit: BusKit) -> None:
    bus = kit.open()
    owner, pt = SERIES[2]
    topics = [ROUTER.topic, MEMORY.topic, LOAD.topic, EVENTS_TOPIC]
    records = [record(t, owner, pt) for t in topics]
    records.append(summary_record(owner, pt, T0, 3))
    records.append(OutRecord(retry_topic(ROUTER.summary_topic), records[-1].key, records[-1].value))
    bus.producer().send(records).result(timeout=20)
    every = [*topics, ROUTER.summary_topic, retry_topic(ROUTER.summary_topic)]
    got = Reader(bus, "spans", every).read(len(records))
    assert sorted((m.topic, m.value) for m in got) == sorted((r.topic, r.value) for r in records)


def test_a_closed_bus_refuses_records(kit: BusKit) -> None:
    bus = kit.open()
    producer = bus.producer()
    producer.send([record(ROUTER.topic, "app-a", "web")]).result(timeout=20)
    bus.close()
    with pytest.raises(BusUnavailable):
        producer.send([record(ROUTER.topic, "app-a", "web")]).result(timeout=20)


def test_the_partition_count_is_fixed_once_created(kit: BusKit) -> None:
    kit.open().close()
    with pytest.raises(ValueError, match="partitions"):
        kit.open(PARTITIONS + 1)


def test_lag_counts_what_is_left_to_read_also_from_a_commit(kit: BusKit) -> None:
    bus = kit.open()
    topics = [ROUTER.topic, MEMORY.topic, LOAD.topic]
    records = [record(t, owner, pt) for t in topics for owner, pt in SERIES]
    for r in records:  # one batch each: Tansu's end offset counts batches
        bus.producer().send([r]).result(timeout=20)
    reader = Reader(bus, "lag", topics)
    reader.wait_assigned()
    left = reader.consumer.lag()
    assert left is not None and left > 0
    if kit.kind == "kafka":  # in messages (the embedded bus counts bytes of its log)
        assert left == len(records) - len(reader._buffer)
    got = reader.read(len(records))
    assert reader.consumer.lag() == 0
    first = sorted(got, key=lambda m: (m.topic, m.partition, m.offset))
    kept = {(m.topic, m.partition): Position(m.offset + 1) for m in first[:1]}
    reader.consumer.commit(kept)
    reader.consumer.close()
    bus.close()
    again = Reader(kit.open(), "lag", topics)
    again.wait_assigned()
    # Positions not fetched from yet count from the commit or the start of the log.
    left = again.consumer.lag()
    assert left is not None and left > 0
    if kit.kind == "kafka":
        assert left == len(records) - 1 - len(again._buffer)
    again.read(len(records) - 1)
    assert again.consumer.lag() == 0


def test_rewind_reads_a_partition_again_from_an_offset(kit: BusKit) -> None:
    bus = kit.open()
    owner, pt = SERIES[0]
    tp = (LOAD.topic, partition_for(partition_key(owner, pt), PARTITIONS))
    bus.producer().send([record(LOAD.topic, owner, pt) for _ in range(4)]).result(timeout=20)
    reader = Reader(bus, "again", [LOAD.topic])
    first = reader.read(4)
    reader.consumer.rewind({tp: first[1].offset})
    assert [m.value for m in reader.read(3)] == [m.value for m in first[1:]]
    reader.read_nothing()
    reader.consumer.close()
