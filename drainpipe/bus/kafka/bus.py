"""KafkaBus: one Kafka cluster's topics, names and clients; the bus contract's factory on Kafka.

Layout. At start `KafkaBus` creates every missing topic of the pipeline with `partitions`
partitions and a replication factor clamped to the broker count: the raw topics, the
events topic, the summary topics and their `RETRY.` topics (both compacted: only the
latest version of a summary key matters), and `__drainpipe_positions` (see `positions`).
A topic that exists with another partition count is an error, not a warning: keys would
move to other partitions and the versions of a series would stop being ordered.
`topic_prefix` namespaces one deployment (or one test) on a shared cluster: it is put in
front of every topic and consumer-group name, and callers keep using `model`'s names.
`config` reads the cluster's address from `KAFKA_BOOTSTRAP_SERVERS` (or `KAFKA_URL`).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
import zlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, TypeVar

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from drainpipe import model
from drainpipe.bus import BusUnavailable, Message
from drainpipe.bus.kafka.consumer import KafkaConsumer
from drainpipe.bus.kafka.errors import _error_text, _on_client_error
from drainpipe.bus.kafka.positions import POSITIONS_TOPIC
from drainpipe.bus.kafka.producer import KafkaProducer, _Pipe
from drainpipe.bus.kafka.tail import read_tail
from drainpipe.clock import SYSTEM

# One logger name for every module of the package.
log = logging.getLogger("drainpipe.bus.kafka")
_librdkafka_log = logging.getLogger("drainpipe.bus.kafka.librdkafka")
# The settings check's clients, which have no broker to reach and say so.
_unheard = logging.getLogger("drainpipe.bus.kafka.settings_check")
_unheard.addHandler(logging.NullHandler())
_unheard.propagate = False

COMPRESSION: Final = "lz4"
_NO_EXTRA: Final[Mapping[str, str]] = MappingProxyType({})
_PREFIX = re.compile(r"^[A-Za-z0-9._-]*$")

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


# librdkafka settings only consumers take, and only producers take (its CONFIGURATION.md).
CONSUMER_ONLY: Final = frozenset({
    "group.id", "group.instance.id", "partition.assignment.strategy", "session.timeout.ms",
    "heartbeat.interval.ms", "group.protocol.type", "group.protocol", "group.remote.assignor",
    "coordinator.query.interval.ms", "max.poll.interval.ms", "enable.auto.commit",
    "auto.commit.interval.ms", "enable.auto.offset.store", "queued.min.messages",
    "queued.max.messages.kbytes", "fetch.wait.max.ms", "fetch.queue.backoff.ms",
    "fetch.message.max.bytes", "max.partition.fetch.bytes", "fetch.max.bytes",
    "fetch.min.bytes", "fetch.error.backoff.ms", "isolation.level", "enable.partition.eof",
    "check.crcs", "auto.offset.reset", "consume.callback.max.messages",
})  # fmt: skip
PRODUCER_ONLY: Final = frozenset({
    "transactional.id", "transaction.timeout.ms", "enable.idempotence",
    "enable.gapless.guarantee", "queue.buffering.max.messages", "queue.buffering.max.kbytes",
    "queue.buffering.max.ms", "linger.ms", "message.send.max.retries", "retries",
    "queue.buffering.backpressure.threshold", "compression.codec", "compression.type",
    "compression.level", "batch.num.messages", "batch.size", "delivery.report.only.error",
    "sticky.partitioning.linger.ms", "acks", "request.required.acks", "request.timeout.ms",
    "message.timeout.ms", "delivery.timeout.ms", "partitioner",
})  # fmt: skip


def _append_error(errors: list[KafkaError | None], err: KafkaError | None, _msg: object) -> None:
    errors.append(err)


def split_settings(
    extra: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """DRAINPIPE_KAFKA_CONFIG's settings by the clients they are for: (every client's,
    consumers' only, producers' only). librdkafka warns about a consumer's setting given
    to a producer, and the other way round."""
    common = {k: v for k, v in extra.items() if k not in CONSUMER_ONLY | PRODUCER_ONLY}
    consumer = {k: v for k, v in extra.items() if k in CONSUMER_ONLY}
    producer = {k: v for k, v in extra.items() if k in PRODUCER_ONLY}
    return common, consumer, producer


def bad_setting(extra: Mapping[str, str]) -> str | None:
    """None if librdkafka takes every DRAINPIPE_KAFKA_CONFIG setting for the clients it
    goes to, else its complaint: a client of each kind is made with them (and no broker
    to talk to) and closed, at start, so a typo fails there rather than in whichever
    stage makes that kind of client first."""
    common, consumer, producer = split_settings(extra)
    base: dict[str, Any] = {"logger": _unheard, **common}
    try:
        confluent_kafka.Consumer({**base, **consumer, "group.id": "settings-check"}).close()
        confluent_kafka.Producer({**base, **producer}).flush(0)
    except KafkaException as exc:
        return _error_text(exc)
    return None


def reachable(bootstrap: str, extra: Mapping[str, str], timeout_s: float) -> str | None:
    """None if the brokers answer a metadata request within timeout_s, else why not."""
    common = split_settings(extra)[0]
    settings: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": _librdkafka_log,
                                "error_cb": _on_client_error, **common}  # fmt: skip
    admin = AdminClient(settings)
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        return _error_text(exc)
    return None


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
        instance_id: str | None = None,
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
        self.instance_id = instance_id
        common, consumer_only, producer_only = split_settings(extra)
        self.config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "logger": _librdkafka_log,
            "error_cb": _on_client_error,
            **common,
        }
        self.consumer_config = {**self.config, **consumer_only}
        self.producer_config = {**self.config, **producer_only}
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
                self._check_partitions(topic, self._partitions_of(admin, topic))
        log.info(
            "bus.topics_created",
            extra={
                "topics": sorted(t.topic for t in missing),
                "partitions": self.partitions,
                "replication": replication,
            },
        )

    def _partitions_of(self, admin: AdminClient, topic: str) -> int:
        """Partition count of a topic another process just created (metadata may lag)."""
        deadline = SYSTEM.monotonic() + self.timeout_s
        while True:
            meta = admin.list_topics(topic=topic, timeout=self.timeout_s).topics.get(topic)
            if meta is not None and meta.error is None and meta.partitions:
                return len(meta.partitions)
            if SYSTEM.monotonic() > deadline:
                raise BusUnavailable(f"topic {topic} exists but its metadata never arrived")
            time.sleep(0.1)

    def forget(self, client: object) -> None:
        """A client closed by its owner is no longer the bus's to close."""
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)

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
                {**self.producer_config, "compression.type": codec, "acks": "all"}
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
    def tail(self, topic: str, per_partition: int) -> list[Message]:
        """The last `per_partition` records of each partition of `topic` (see `tail`)."""
        return read_tail(self, topic, per_partition)

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
