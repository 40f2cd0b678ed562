"""Sink and retry workers against a PostgreSQL shard that goes away and comes back."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka import TopicPartition as KafkaPartition

from drainpipe import codec
from drainpipe.accum import new_summary
from drainpipe.bus import Message, OutRecord, Position, TopicPartition
from drainpipe.bus.embedded import EmbeddedBus, EmbeddedConsumer
from drainpipe.model import MINUTE_MS, ROUTER, Stat, partition_for, partition_key, summary_key
from drainpipe.sink.worker import Pending, SinkWorker, retry_worker
from drainpipe.store.postgres import PostgresStore
from drainpipe.store.sqlite import SqliteStore
from drainpipe.telemetry.metrics import SelfMetrics
from tests.bus.test_contract import kafka_bus
from tests.support import pg_cluster
from tests.support.waiting import until

T0 = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS


@pytest.fixture
def shard() -> Iterator[pg_cluster.Cluster]:
    cluster = pg_cluster.create()
    yield cluster
    cluster.destroy()


def summaries(n: int) -> list[OutRecord]:
    out = []
    for i in range(n):
        s = new_summary("app", "web", "router", 60, T0 + i * MINUTE_MS)
        s.n = 3
        s.stats["service_ms"] = Stat(3, 30.0, 300.0, 5.0, 15.0)
        out.append(OutRecord(ROUTER.summary_topic, summary_key(s), codec.encode_summary(s)))
    return out


def run(worker: SinkWorker) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    t.start()
    return stop, t


def wait_for(store: PostgresStore, count: int, timeout_s: float = 20) -> int:
    deadline = time.monotonic() + timeout_s
    got = -1
    while time.monotonic() < deadline:
        try:
            got = len(store.read_summaries("app", "router", T0, T0 + 1000 * MINUTE_MS))
        except Exception:
            got = -1
        if got == count:
            return got
        time.sleep(0.1)
    return got


def test_failed_writes_park_in_retry_and_land_once_the_shard_is_back(
    tmp_path: Path, shard: pg_cluster.Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bus = EmbeddedBus(tmp_path / "bus", partitions=2)
    store = PostgresStore([shard.dsn])
    metrics = SelfMetrics()
    fresh = SinkWorker(bus, store, metrics, retry=bus.producer())
    retry = retry_worker(bus, store, metrics)
    shard.stop()
    stops = [run(fresh), run(retry)]
    bus.producer().send(summaries(5)).result()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not bus.tail("RETRY." + ROUTER.summary_topic):
        time.sleep(0.05)
    assert len(bus.tail("RETRY." + ROUTER.summary_topic)) == 5  # parked, fresh data flows on
    time.sleep(3.0)  # long enough for the backoff to reach its cap
    shard.start()
    assert wait_for(store, 5, timeout_s=60) == 5
    for stop, t in stops:
        stop.set()
        t.join(10)
    assert bus.load_positions("sink")[(ROUTER.summary_topic, 0)].offset >= 0
    # The backlog's end is visible: logged, counted, and the tries came at most 5 s apart.
    waits = [r.__dict__["retry_in_s"] for r in caplog.records
             if r.getMessage() == "retry.write_failed"]  # fmt: skip
    assert waits and max(waits) <= 5.0
    assert any(r.getMessage() == "retry.write_recovered" for r in caplog.records)
    counted = metrics.render().decode()
    assert "drainpipe_retry_messages_stored_total 5.0" in counted
    assert 'drainpipe_sink_writes_recovered_total{group="retry"}' in counted
    store.close()
    bus.close()


def test_a_retry_worker_stuck_past_the_poll_interval_rejoins_and_still_lands(
    tmp_path: Path, shard: pg_cluster.Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("drainpipe.sink.worker.MAX_BLOCK_S", 0.5)
    bus = EmbeddedBus(tmp_path / "bus", partitions=1)
    store = PostgresStore([shard.dsn])
    worker = SinkWorker(bus, store, SelfMetrics())  # retries in place
    rejoins: list[str] = []
    real_consumer = bus.consumer

    def consumer(group: str) -> EmbeddedConsumer:
        rejoins.append(group)
        return real_consumer(group)

    monkeypatch.setattr(bus, "consumer", consumer)
    shard.stop()
    bus.producer().send(summaries(3)).result()
    stop, t = run(worker)
    time.sleep(2.0)  # several give-ups and rejoins while the shard is down
    assert rejoins and set(rejoins) == {"sink"}
    shard.start()
    assert wait_for(store, 3) == 3
    stop.set()
    t.join(10)
    assert bus.load_positions("sink")[(ROUTER.summary_topic, 0)].offset == 3
    store.close()
    bus.close()


class GatedStore(SqliteStore):
    """A real SQLite store whose first summary write waits for `gate`; records each write."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.writes: list[list[codec.EncodedSummary]] = []

    def write_summaries(self, summaries: Sequence[codec.EncodedSummary]) -> None:
        self.writes.append(list(summaries))
        if len(self.writes) == 1:
            self.entered.set()
            assert self.gate.wait(20)
        super().write_summaries(summaries)


def versions(owners: int, n: int) -> list[OutRecord]:
    """Version n of one minute's summary for each of `owners` apps."""
    out = []
    for a in range(owners):
        s = new_summary(f"app{a}", "web", "router", 60, T0)
        s.n = n
        s.stats["service_ms"] = Stat(n, 10.0 * n, 100.0 * n, 5.0, 15.0)
        out.append(OutRecord(ROUTER.summary_topic, summary_key(s), codec.encode_summary(s)))
    return out


def test_a_batch_grows_while_the_store_is_busy_and_keeps_each_keys_newest_version(
    tmp_path: Path,
) -> None:
    bus = EmbeddedBus(tmp_path / "bus", partitions=1)
    store = GatedStore(tmp_path / "store.sqlite")
    stop, t = run(SinkWorker(bus, store, SelfMetrics()))
    bus.producer().send(versions(50, 1)).result()
    assert store.entered.wait(10)
    for n in range(2, 12):  # published while the first write is held
        bus.producer().send(versions(50, n)).result()
    time.sleep(0.5)
    assert bus.load_positions("sink")[(ROUTER.summary_topic, 0)].offset == 0  # not stored yet
    store.gate.set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        bus.load_positions("sink")[(ROUTER.summary_topic, 0)].offset < 50 * 11
    ):
        time.sleep(0.05)
    stop.set()
    t.join(10)
    assert bus.load_positions("sink")[(ROUTER.summary_topic, 0)].offset == 50 * 11
    # Ten versions of each key waited behind the first write, and only the newest was written.
    assert [len(w) for w in store.writes] == [50, 50]
    assert {s.n for s in store.writes[1]} == {11}
    stored = [store.read_summaries(f"app{a}", "router", T0, T0 + MINUTE_MS) for a in range(50)]
    assert [s.n for (s,) in stored] == [11] * 50
    store.close()
    bus.close()


def test_a_batch_keeps_each_keys_last_version_and_counts_an_undecodable_one(
    tmp_path: Path,
) -> None:
    metrics = SelfMetrics()
    batch = Pending(metrics)
    v1, v2, v3 = (versions(2, n) for n in (1, 2, 3))
    garbage = Message(ROUTER.summary_topic, 0, 6, v1[1].key, b"\xc1 not msgpack")
    batch.add([Message(r.topic, 0, i, r.key, r.value) for i, r in enumerate(v1 + v2)])
    batch.add([Message(v3[0].topic, 0, 4, v3[0].key, v3[0].value), garbage])
    got = {(s.owner, s.n) for s in batch.summaries()}
    assert got == {("app0", 3)}  # app1's last version could not be decoded
    assert batch.positions == {(ROUTER.summary_topic, 0): Position(7)}
    counted = f'drainpipe_bus_bad_messages_total{{topic="{ROUTER.summary_topic}"}} 1.0'
    assert counted in metrics.render().decode()


def test_a_sink_whose_partitions_move_mid_write_commits_before_they_go(
    tmp_path: Path, kafka_bootstrap: str, kafka_client_tuning: dict[str, str]
) -> None:
    """A second member joins while the first holds a write and a grown batch behind it.

    The first stores and commits both in its revoke, before the other member is given
    any partition, so neither member later commits over the other's progress (which
    `commit` refuses as going back) and every key ends at its newest version.
    """
    bus = kafka_bus(kafka_bootstrap, kafka_client_tuning, partitions=4)
    store = GatedStore(tmp_path / "store.sqlite")
    crashed: list[BaseException] = []

    def member(worker: SinkWorker, stop: threading.Event) -> None:
        try:
            worker.run(stop)
        except BaseException as exc:
            crashed.append(exc)

    members: list[tuple[threading.Event, threading.Thread]] = []
    handed: list[dict[TopicPartition, Position]] = []  # the newcomer's assignments

    class Newcomer(SinkWorker):
        def _on_assign(self, assigned: Mapping[TopicPartition, Position]) -> None:
            handed.append(dict(assigned))
            super()._on_assign(assigned)

    def join(kind: type[SinkWorker] = SinkWorker) -> None:
        stop = threading.Event()
        # Only the topic with data: cooperative-sticky moves as few partitions as it
        # can, and among every summary topic's it could move only empty ones.
        worker = kind(bus, store, SelfMetrics(), topics=(ROUTER.summary_topic,))
        t = threading.Thread(target=member, args=(worker, stop), daemon=True)
        t.start()
        members.append((stop, t))

    try:
        join()
        bus.producer().send(versions(40, 1)).result(20)
        assert store.entered.wait(30)  # the first write is held
        bus.producer().send(versions(40, 2)).result(20)
        time.sleep(1.0)  # polled into the next batch behind the held write
        join(Newcomer)
        # Give the newcomer time to take partitions and store them, as it could if the
        # first member let them go before its held write had landed and been committed.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(store.writes) < 2:
            time.sleep(0.05)
        store.gate.set()
        bus.producer().send(versions(40, 3)).result(20)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not crashed:
            got = [store.read_summaries(f"app{a}", "router", T0, T0 + MINUTE_MS) for a in range(40)]
            # Cooperative assignment hands partitions over in a second rebalance,
            # after the first member let them go: wait for that too.
            if handed and all(len(s) == 1 and s[0].n == 3 for s in got):
                break
            time.sleep(0.1)
        for stop, _ in members:
            stop.set()
        for _, t in members:
            t.join(30)
        assert not crashed, crashed
        assert not any(t.is_alive() for _, t in members), "a member did not stop"
        # The first member committed versions 1 and 2 of the partitions it gave away
        # before the newcomer got them: nothing of them is read twice.
        per_partition = Counter(
            partition_for(partition_key(f"app{a}", "web"), 4) for a in range(40)
        )
        assert handed and handed[0], "the newcomer was given no partition"
        router = {p: pos for (t, p), pos in handed[0].items() if t == ROUTER.summary_topic}
        assert router, handed
        for partition, pos in router.items():
            assert pos.offset >= per_partition[partition], router  # at least version 1
        got = [store.read_summaries(f"app{a}", "router", T0, T0 + MINUTE_MS) for a in range(40)]
        assert [s.n for (s,) in got] == [3] * 40
        # The group's committed offsets, read without joining it.
        probe = confluent_kafka.Consumer({**bus.config, "group.id": bus.group_id("sink")})
        topic = bus.topic(ROUTER.summary_topic)
        committed = probe.committed([KafkaPartition(topic, p) for p in range(4)], timeout=20)
        probe.close()
        assert sum(tp.offset for tp in committed) == 3 * 40, committed
    finally:
        store.close()
        bus.close()


class FailingStore(SqliteStore):
    """A real SQLite store whose summary writes fail while `failing` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failing = threading.Event()
        self.tried = threading.Event()

    def write_summaries(self, summaries: Sequence[codec.EncodedSummary]) -> None:
        self.tried.set()
        if self.failing.is_set():
            raise OSError("the store is away")
        super().write_summaries(summaries)


def test_a_member_that_gives_partitions_away_mid_failure_reads_the_kept_ones_again(
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_client_tuning: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retry-style member (it retries writes in place) holds a failing write when a
    second member joins. Its revoke cannot store what it polled, so nothing of it is
    committed; cooperative assignment lets it keep half the partitions, whose messages
    are then behind its read position: it must read them again, or they are lost."""
    monkeypatch.setattr("drainpipe.sink.worker.REVOKE_BUDGET_S", 0.5)
    monkeypatch.setattr("drainpipe.sink.worker.MAX_BLOCK_S", 4.0)
    bus = kafka_bus(kafka_bootstrap, kafka_client_tuning, partitions=4)
    store = FailingStore(tmp_path / "store.sqlite")
    store.failing.set()
    workers = [SinkWorker(bus, store, SelfMetrics(), topics=(ROUTER.summary_topic,))]
    running = [run(workers[0])]
    try:
        bus.producer().send(versions(40, 1)).result(20)
        assert store.tried.wait(30)  # the first write is failing and retried in place
        workers.append(SinkWorker(bus, store, SelfMetrics(), topics=(ROUTER.summary_topic,)))
        running.append(run(workers[1]))
        until(lambda: all(w._assigned for w in workers), "the partitions are shared")
        time.sleep(4.0)  # the first write gives up, uncommitted
        store.failing.clear()

        def stored() -> list[int]:
            return [
                len(store.read_summaries(f"app{a}", "router", T0, T0 + MINUTE_MS))
                for a in range(40)
            ]

        until(lambda: stored() == [1] * 40, "every summary is stored",
              detail=lambda: f"{stored().count(0)} of 40 summaries never stored")  # fmt: skip
    finally:
        for stop, _ in running:
            stop.set()
        for _, t in running:
            t.join(30)
        store.close()
        bus.close()
