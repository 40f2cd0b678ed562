"""Producing to Kafka: the bus's one shared librdkafka producer, its delivery reports, handles.

Producing. Idempotent, `acks=all`, a 5 ms linger, lz4 when the broker takes it (probed
with one record at start, else no compression). The partition is set explicitly with
`model.partition_for`, so every version of a summary key stays on its series' partition.
All producer handles of a bus share one librdkafka producer (one producer id, one set of
connections) whose delivery reports a background thread serves; `send` never blocks: a
full local queue fails its future with `BusUnavailable`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException

from drainpipe import model
from drainpipe.bus import BusUnavailable, OutRecord
from drainpipe.bus.kafka.cluster import Cluster, Item
from drainpipe.bus.kafka.errors import _error_text

# One logger name for every module of the package.
log = logging.getLogger("drainpipe.bus.kafka")


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

    def __init__(self, bus: Cluster) -> None:
        self._timeout_s = bus.timeout_s
        self._producer = confluent_kafka.Producer(
            {
                "linger.ms": 5,
                "compression.type": bus.compression,
                **bus.producer_config,
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

    def send_items(self, items: Sequence[Item]) -> Future[None]:
        """Produce to Kafka topics and partitions as given; the future is `send`'s.

        Records are queued under the lock `close` takes to mark the pipe closed, so a send
        racing a close is either queued before close flushes (and delivered or failed by
        it) or refused; none is queued after the delivery thread stopped, to wait forever.
        """
        future: Future[None] = Future()
        if not items:
            future.set_result(None)
            return future
        with self._lock:
            if self._closed:
                future.set_exception(BusUnavailable("the Kafka producer is closed"))
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

    def __init__(self, bus: Cluster, pipe: _Pipe) -> None:
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
