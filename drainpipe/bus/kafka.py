"""The Kafka bus: the bus contract on Apache Kafka (or a Kafka-protocol broker) via confluent-kafka.

Layout. At start `KafkaBus` creates every missing topic of the pipeline with `partitions`
partitions and a replication factor clamped to the broker count: the raw topics, the
events topic, the summary topics and their `RETRY.` topics (both compacted: only the
latest version of a summary key matters), and `__drainpipe_positions` (below). A topic
that exists with another partition count is an error, not a warning: keys would move to
other partitions and the versions of a series would stop being ordered.
`topic_prefix` namespaces one deployment (or one test) on a shared cluster: it is put in
front of every topic and consumer-group name, and callers keep using `model`'s names.
`config` reads the cluster's address from `KAFKA_BOOTSTRAP_SERVERS` (or `KAFKA_URL`).

Producing. Idempotent, `acks=all`, a 5 ms linger, lz4 when the broker takes it (probed
with one record at start, else no compression). The partition is set explicitly with
`model.partition_for`, so every version of a summary key stays on its series' partition.
All producer handles of a bus share one librdkafka producer (one producer id, one set of
connections) whose delivery reports a background thread serves; `send` never blocks: a
full local queue fails its future with `BusUnavailable`. `poll` returns as soon as one
message is there, like the embedded bus.

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

import functools
import json
import logging
import re
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, TypeVar

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from drainpipe import model
from drainpipe.bus import (
    BusUnavailable,
    Message,
    OnAssign,
    OnRevoke,
    OutRecord,
    Position,
    TopicPartition,
)

log = logging.getLogger(__name__)
_librdkafka_log = logging.getLogger(f"{__name__}.librdkafka")

POSITIONS_TOPIC: Final = "__drainpipe_positions"
COMPRESSION: Final = "lz4"
_NO_EXTRA: Final[Mapping[str, str]] = MappingProxyType({})
_PREFIX = re.compile(r"^[A-Za-z0-9._-]*$")
# Consumer errors librdkafka recovers from by itself: logged, never raised.
_TRANSIENT: Final = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
        KafkaError._MAX_POLL_EXCEEDED,
    }
)

# (physical topic, partition, key, value) as handed to librdkafka.
_Item = tuple[str, int, bytes, bytes | None]
_Client = TypeVar("_Client", "KafkaProducer", "KafkaConsumer")


def topic_layout() -> dict[str, dict[str, str]]:
    """Every topic the pipeline uses (names as in `model`) with its topic configuration."""
    compact = {"cleanup.policy": "compact"}
    layout: dict[str, dict[str, str]] = {s.topic: {} for s in model.SCHEMAS}
    layout[model.EVENTS_TOPIC] = {}
    # Event batches of one app share a key: compaction would drop all but the last.
    layout[model.retry_topic(model.EVENTS_TOPIC)] = {}
    # Frame ids only need to outlive Logplex's retries of a frame.
    layout[model.FRAMES_TOPIC] = {"retention.ms": str(3_600_000)}
    for topic in model.SUMMARY_TOPICS:
        layout[topic] = dict(compact)
        layout[model.retry_topic(topic)] = dict(compact)
    # Roll hourly so the cleaner can compact positions; a segment is never compacted open.
    layout[POSITIONS_TOPIC] = {**compact, "segment.ms": "3600000"}
    return layout


def _error_text(exc: KafkaException) -> str:
    err = exc.args[0] if exc.args else None
    return err.str() if isinstance(err, KafkaError) else str(exc)


def _append_error(errors: list[KafkaError | None], err: KafkaError | None, _msg: object) -> None:
    errors.append(err)


def _on_client_error(err: KafkaError) -> None:
    level = logging.ERROR if err.fatal() else logging.WARNING
    log.log(level, "bus.kafka_error", extra={"code": err.code(), "error": err.str()})


class KafkaBus:
    """Producers and consumer-group members on one Kafka cluster (see the module doc)."""

    def __init__(
        self,
        bootstrap: str,
        partitions: int = 32,
        replication: int = 3,
        client_id: str = "drainpipe",
        extra: Mapping[str, str] = _NO_EXTRA,
        topic_prefix: str = "",
        timeout_s: float = 30.0,
    ) -> None:
        if not 1 <= partitions <= 4096:
            raise ValueError(f"partitions must be between 1 and 4096, not {partitions}")
        if replication < 1:
            raise ValueError(f"replication must be at least 1, not {replication}")
        if not _PREFIX.match(topic_prefix):
            raise ValueError(
                f"topic_prefix {topic_prefix!r} may only hold letters, digits, '.', '_' and '-'"
            )
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.replication = replication
        self.prefix = topic_prefix
        self.timeout_s = timeout_s
        self.config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "logger": _librdkafka_log,
            "error_cb": _on_client_error,
            **extra,
        }
        self._clients: list[KafkaProducer | KafkaConsumer] = []
        self._pipe: _Pipe | None = None
        self._lock = threading.Lock()
        self._closing = False  # no new clients
        self._closed = False  # consumers closed: no new producer either
        self._ensure_topics()
        self.compression = self._probe_compression()

    # -- names ------------------------------------------------------------------------
    def topic(self, name: str) -> str:
        """The Kafka topic of a topic name of `model`."""
        return self.prefix + name

    def logical(self, topic: str) -> str:
        """The `model` name of a Kafka topic of this bus."""
        return topic[len(self.prefix) :]

    def group_id(self, group: str) -> str:
        return self.prefix + group

    def positions_partition(self, group: str) -> int:
        return zlib.crc32(group.encode()) % self.partitions

    # -- start-up ---------------------------------------------------------------------
    def _ensure_topics(self) -> None:
        admin = AdminClient(self.config)
        try:
            metadata = admin.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            raise BusUnavailable(
                f"cannot reach Kafka at {self.bootstrap}: {_error_text(exc)}"
            ) from exc
        replication = max(1, min(self.replication, len(metadata.brokers)))
        missing = []
        for name, config in topic_layout().items():
            topic = self.topic(name)
            have = metadata.topics.get(topic)
            if have is not None and have.error is None:
                self._check_partitions(topic, len(have.partitions))
            else:
                missing.append(NewTopic(topic, self.partitions, replication, config=config))
        if not missing:
            return
        futures = admin.create_topics(
            missing, operation_timeout=self.timeout_s, request_timeout=self.timeout_s
        )
        for topic, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                err = exc.args[0]
                if not (
                    isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    raise BusUnavailable(
                        f"could not create topic {topic} on {self.bootstrap}: {_error_text(exc)}"
                    ) from exc
                raced = admin.list_topics(topic=topic, timeout=self.timeout_s).topics[topic]
                self._check_partitions(topic, len(raced.partitions))
        log.info(
            "bus.topics_created",
            extra={
                "topics": sorted(t.topic for t in missing),
                "partitions": self.partitions,
                "replication": replication,
            },
        )

    def _check_partitions(self, topic: str, have: int) -> None:
        if have != self.partitions:
            raise ValueError(
                f"Kafka topic {topic} has {have} partitions but this bus was asked for "
                f"{self.partitions}; partition counts are fixed once topics exist (keys would "
                f"move), so start drainpipe with partitions={have} or use a new topic_prefix"
            )

    def _probe_compression(self) -> str:
        """lz4 if the broker accepts an lz4 batch, else none (a compressible probe record)."""
        topic = self.topic(POSITIONS_TOPIC)
        for codec in (COMPRESSION, "none"):
            probe = confluent_kafka.Producer(
                {**self.config, "compression.type": codec, "acks": "all"}
            )
            errors: list[KafkaError | None] = []
            probe.produce(
                topic,
                value=b"\0" * 1024,
                key=b"compression-probe",
                partition=0,
                on_delivery=functools.partial(_append_error, errors),
            )
            probe.produce(topic, value=None, key=b"compression-probe", partition=0)
            left = probe.flush(self.timeout_s)
            if left or not errors:
                raise BusUnavailable(
                    f"Kafka at {self.bootstrap} did not acknowledge a write to {topic}"
                )
            err = errors[0]
            if err is None:
                log.info("bus.compression", extra={"codec": codec})
                return codec
            if err.code() != KafkaError.UNSUPPORTED_COMPRESSION_TYPE:
                raise BusUnavailable(f"Kafka refused a write to {topic}: {err.str()}")
            log.warning("bus.compression_unsupported", extra={"codec": codec})
        raise BusUnavailable(f"Kafka at {self.bootstrap} refused even an uncompressed write")

    # -- clients ----------------------------------------------------------------------
    def producer(self) -> KafkaProducer:
        return self._track(KafkaProducer(self, self.pipe()))

    def consumer(self, group: str) -> KafkaConsumer:
        return self._track(KafkaConsumer(self, group))

    def _track(self, client: _Client) -> _Client:
        with self._lock:
            if self._closing:
                client.close()
                raise BusUnavailable("the Kafka bus is closed")
            self._clients.append(client)
        return client

    def pipe(self) -> _Pipe:
        """The bus's producer (made on first use), shared by producers and commits."""
        with self._lock:
            if self._pipe is None:
                if self._closed:
                    raise BusUnavailable("the Kafka bus is closed")
                self._pipe = _Pipe(self)
            return self._pipe

    def close(self) -> None:
        """Close every consumer (they leave their groups, maybe committing), then producers."""
        with self._lock:
            self._closing = True
            clients, self._clients = self._clients, []
        for client in clients:
            if isinstance(client, KafkaConsumer):
                client.close()
        with self._lock:
            self._closed = True
            pipe = self._pipe
        for client in clients:
            if isinstance(client, KafkaProducer):
                client.close()
        if pipe is not None:
            pipe.close()


class _Delivery:
    """Delivery-report callback of one `send`: completes its future on the last report."""

    __slots__ = ("_future", "_left", "_lock", "_settled")

    def __init__(self, future: Future[None], count: int) -> None:
        self._future = future
        self._left = count
        self._lock = threading.Lock()
        self._settled = False

    def __call__(self, err: KafkaError | None, msg: confluent_kafka.Message) -> None:
        with self._lock:
            self._left -= 1
            if self._settled or (err is None and self._left > 0):
                return
            self._settled = True
        if err is None:
            self._future.set_result(None)
            return
        log.warning(
            "bus.delivery_failed",
            extra={"topic": msg.topic(), "partition": msg.partition(), "error": err.str()},
        )
        self._future.set_exception(
            BusUnavailable(
                f"Kafka did not take a record for {msg.topic()}[{msg.partition()}]: {err.str()}"
            )
        )

    def fail(self, exc: BusUnavailable) -> None:
        with self._lock:
            if self._settled:
                return
            self._settled = True
        self._future.set_exception(exc)


class _Pipe:
    """The bus's one idempotent librdkafka producer and the thread serving its reports.

    Every producer handle and the consumers' metadata records share it: one set of
    connections, and one producer id to fetch (~0.5 s) per bus, as librdkafka advises.
    """

    def __init__(self, bus: KafkaBus) -> None:
        self._timeout_s = bus.timeout_s
        self._producer = confluent_kafka.Producer(
            {
                "linger.ms": 5,
                "compression.type": bus.compression,
                **bus.config,
                "enable.idempotence": True,
                "acks": "all",
            }
        )
        self._closed = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def send_items(self, items: Sequence[_Item]) -> Future[None]:
        """Produce to Kafka topics and partitions as given; the future is `send`'s."""
        future: Future[None] = Future()
        if self._closed:
            future.set_exception(BusUnavailable("the Kafka producer is closed"))
            return future
        if not items:
            future.set_result(None)
            return future
        delivery = _Delivery(future, len(items))
        for i, (topic, partition, key, value) in enumerate(items):
            try:
                self._producer.produce(
                    topic, value=value, key=key, partition=partition, on_delivery=delivery
                )
            except BufferError:
                delivery.fail(
                    BusUnavailable(
                        f"the Kafka producer's local queue is full ({len(items) - i} of "
                        f"{len(items)} records for {topic} not queued); try again shortly"
                    )
                )
                break
            except KafkaException as exc:
                delivery.fail(
                    BusUnavailable(
                        f"Kafka refused a record for {topic}[{partition}]: {_error_text(exc)}"
                    )
                )
                break
        return future

    def flush(self) -> None:
        left = self._producer.flush(self._timeout_s)
        if left:
            log.error("bus.flush_incomplete", extra={"records": left})

    def close(self) -> None:
        """Flush (up to the bus timeout); records still unsent then fail their futures."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._producer.flush(self._timeout_s):
            log.error("bus.flush_incomplete", extra={"records": len(self._producer)})
            self._producer.purge()
            self._producer.flush(0)
        self._stop.set()
        self._poller.join()


class KafkaProducer:
    """A producer handle of a `KafkaBus`: records go out through the bus's one producer."""

    def __init__(self, bus: KafkaBus, pipe: _Pipe) -> None:
        self.partitions = bus.partitions
        self._bus = bus
        self._pipe = pipe
        self._closed = False

    def send(self, records: Sequence[OutRecord]) -> Future[None]:
        if self._closed:
            future: Future[None] = Future()
            future.set_exception(BusUnavailable("the Kafka producer is closed"))
            return future
        return self._pipe.send_items(
            [
                (
                    self._bus.topic(r.topic),
                    model.partition_for(r.key, self.partitions),
                    r.key,
                    r.value,
                )
                for r in records
            ]
        )

    def close(self) -> None:
        """Refuse further sends and wait (up to the bus timeout) for what is in flight."""
        if not self._closed:
            self._closed = True
            self._pipe.flush()


@dataclass(frozen=True, slots=True)
class _Committed:
    """A committed offset (None: nothing committed) and its metadata."""

    offset: int | None
    metadata: str


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


class KafkaConsumer:
    """One consumer-group member: manual commits, positions reported on assignment.

    Like the confluent-kafka consumer under it, it is used from one thread.
    """

    def __init__(self, bus: KafkaBus, group: str) -> None:
        self.group = group
        self._bus = bus
        self._group_id = bus.group_id(group)
        self._consumer = confluent_kafka.Consumer(
            {
                **bus.config,
                "group.id": self._group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
            }
        )
        self._positions_topic = bus.topic(POSITIONS_TOPIC)
        self._positions_partition = bus.positions_partition(self._group_id)
        self._reader: confluent_kafka.Consumer | None = None
        self._known: dict[TopicPartition, _Committed] = {}  # Kafka topic names
        self._with_metadata: set[TopicPartition] = set()
        self._lost: frozenset[TopicPartition] = frozenset()
        self._failed: BaseException | None = None
        self._closed = False

    # -- assignment -------------------------------------------------------------------
    def subscribe(
        self, topics: Sequence[str], on_assign: OnAssign, on_revoke: OnRevoke | None = None
    ) -> None:
        def assigned(consumer: confluent_kafka.Consumer, parts: list[KafkaPartition]) -> None:
            try:
                resolved = self._resolve(parts)
            except BaseException as exc:
                self._failed = exc
                raise
            self._known.update(resolved)
            consumer.assign(
                [
                    KafkaPartition(
                        t, p, confluent_kafka.OFFSET_INVALID if c.offset is None else c.offset
                    )
                    for (t, p), c in resolved.items()
                ]
            )
            log.info("bus.assigned", extra={"group": self.group, "partitions": len(parts)})
            on_assign(
                {
                    (self._bus.logical(t), p): Position(c.offset or 0, c.metadata)
                    for (t, p), c in resolved.items()
                }
            )

        def revoked(consumer: confluent_kafka.Consumer, parts: list[KafkaPartition]) -> None:
            log.info("bus.revoked", extra={"group": self.group, "partitions": len(parts)})
            try:
                if on_revoke is not None:
                    on_revoke([(self._bus.logical(tp.topic), tp.partition) for tp in parts])
            finally:
                for tp in parts:
                    self._known.pop((tp.topic, tp.partition), None)
                    self._with_metadata.discard((tp.topic, tp.partition))

        def lost(consumer: confluent_kafka.Consumer, parts: list[KafkaPartition]) -> None:
            log.warning(
                "bus.partitions_lost", extra={"group": self.group, "partitions": len(parts)}
            )
            self._lost = frozenset((tp.topic, tp.partition) for tp in parts)
            try:
                revoked(consumer, parts)
            finally:
                self._lost = frozenset()

        self._consumer.subscribe(
            [self._bus.topic(t) for t in topics],
            on_assign=assigned,
            on_revoke=revoked,
            on_lost=lost,
        )

    def _resolve(self, parts: Sequence[KafkaPartition]) -> dict[TopicPartition, _Committed]:
        """Committed offsets of parts, with metadata from the broker or the positions topic."""
        ask = [KafkaPartition(tp.topic, tp.partition) for tp in parts]
        try:
            committed = self._consumer.committed(ask, timeout=self._bus.timeout_s)
        except KafkaException as exc:
            raise BusUnavailable(
                f"group {self._group_id}: cannot read committed offsets: {_error_text(exc)}"
            ) from exc
        for tp in committed:
            if tp.error is not None:
                raise BusUnavailable(
                    f"group {self._group_id}: cannot read the committed offset of "
                    f"{tp.topic}[{tp.partition}]: {tp.error.str()}"
                )
        need = {
            _position_key(self._group_id, tp.topic, tp.partition)
            for tp in committed
            if not tp.metadata
        }
        records = self._read_positions(need) if need else {}
        out: dict[TopicPartition, _Committed] = {}
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else None
            metadata = tp.metadata or ""
            record = records.get(_position_key(self._group_id, tp.topic, tp.partition))
            if metadata or record is not None:  # keep its record current from now on
                self._with_metadata.add((tp.topic, tp.partition))
            if not metadata and record is not None:
                found = record.metadata_for(offset)
                if found is None:
                    log.warning(
                        "bus.position_metadata_mismatch",
                        extra={
                            "group": self._group_id,
                            "topic": tp.topic,
                            "partition": tp.partition,
                            "committed": offset,
                            "recorded": record.offset,
                            "recorded_prev": record.prev_offset,
                        },
                    )
                metadata = found or ""
            out[(tp.topic, tp.partition)] = _Committed(offset, metadata)
        return out

    def _read_positions(self, keys: set[bytes]) -> dict[bytes, _PositionRecord]:
        """The latest positions record of each key, reading this group's partition to EOF."""
        topic, partition = self._positions_topic, self._positions_partition
        if self._reader is None:
            self._reader = confluent_kafka.Consumer(
                {
                    **self._bus.config,
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
        deadline = time.monotonic() + self._bus.timeout_s
        while time.monotonic() < deadline:
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

    # -- consuming --------------------------------------------------------------------
    def poll(self, max_messages: int, timeout_s: float) -> list[Message]:
        """Up to max_messages, returned as soon as one is there (waiting up to timeout_s)."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        if self._failed is not None:
            raise BusUnavailable(
                f"group {self._group_id}: partition assignment failed ({self._failed}); "
                "close this consumer and open another"
            ) from self._failed
        # consume(n, t) waits for n messages or t seconds: take what is there, else wait
        # for the first one and take what came with it.
        got = self._consumer.consume(max_messages, 0)
        if not got:
            got = self._consumer.consume(1, timeout_s)
            if got and max_messages > 1:
                got += self._consumer.consume(max_messages - 1, 0)
        out: list[Message] = []
        for m in got:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.code() in _TRANSIENT and not err.fatal():
                    log.warning(
                        "bus.consume_error", extra={"group": self.group, "error": err.str()}
                    )
                    continue
                where = f"{m.topic()}[{m.partition()}]"
                raise BusUnavailable(f"group {self._group_id}: Kafka error on {where}: {err.str()}")
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            assert topic is not None and partition is not None and offset is not None
            out.append(
                Message(
                    self._bus.logical(topic), partition, offset, m.key() or b"", m.value() or b""
                )
            )
        return out

    # -- committing -------------------------------------------------------------------
    def commit(self, positions: Mapping[TopicPartition, Position]) -> None:
        """Store positions: metadata records first, then the group's offsets (see module doc)."""
        wanted = {(self._bus.topic(t), p): pos for (t, p), pos in positions.items()}
        unknown = [KafkaPartition(t, p) for (t, p) in wanted if (t, p) not in self._known]
        if unknown:
            self._known.update(self._resolve(unknown))
        for (topic, partition), pos in wanted.items():
            if pos.offset < 0:
                raise ValueError(f"offset {pos.offset} of {topic}[{partition}] is negative")
            before = self._known[(topic, partition)].offset
            if before is not None and pos.offset < before:
                raise ValueError(
                    f"group {self._group_id}: commit of {topic}[{partition}] at offset "
                    f"{pos.offset} would go back from {before}"
                )
        for tp in self._lost & wanted.keys():
            log.warning(
                "bus.commit_skipped_lost",
                extra={"group": self.group, "topic": tp[0], "partition": tp[1]},
            )
            del wanted[tp]
        if not wanted:
            return
        self._write_positions(wanted)
        offsets = [
            KafkaPartition(t, p, pos.offset, metadata=pos.metadata)
            for (t, p), pos in wanted.items()
        ]
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise BusUnavailable(
                f"group {self._group_id}: offset commit failed: {_error_text(exc)}"
            ) from exc
        for done in result:
            if done.error is not None:
                raise BusUnavailable(
                    f"group {self._group_id}: offset commit of {done.topic}[{done.partition}] "
                    f"failed: {done.error.str()}"
                )
        for tp, pos in wanted.items():
            self._known[tp] = _Committed(pos.offset, pos.metadata)

    def _write_positions(self, wanted: Mapping[TopicPartition, Position]) -> None:
        items: list[_Item] = []
        for (topic, partition), pos in wanted.items():
            if not pos.metadata and (topic, partition) not in self._with_metadata:
                continue
            prev = self._known[(topic, partition)]
            record = _PositionRecord(pos.offset, pos.metadata, prev.offset, prev.metadata)
            key = _position_key(self._group_id, topic, partition)
            items.append((self._positions_topic, self._positions_partition, key, record.encode()))
            self._with_metadata.add((topic, partition))
        if not items:
            return
        try:
            self._bus.pipe().send_items(items).result(timeout=self._bus.timeout_s)
        except FutureTimeout as exc:
            raise BusUnavailable(
                f"group {self._group_id}: {self._positions_topic} did not acknowledge "
                f"committed metadata within {self._bus.timeout_s:g} s"
            ) from exc

    def close(self) -> None:
        """Leave the group (on_revoke runs and may commit)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._consumer.close()
        finally:
            if self._reader is not None:
                self._reader.close()
