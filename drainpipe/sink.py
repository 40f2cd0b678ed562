"""Sink workers: summary and event topics into the store; failed writes via RETRY topics.

Positions are committed only after the store's transaction commits (or, on failure, after
the batch is durable in its RETRY topic), so a crash replays the last batch, which the
store's idempotent writes absorb. With no retry producer (the embedded default) a failed
write is retried in place with backoff. The retry worker consumes RETRY topics and
retries forever, so an outage of one store shard never blocks fresh data.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Mapping

from drainpipe import codec
from drainpipe.bus import Bus, Message, OutRecord, Position, Producer, TopicPartition
from drainpipe.model import EVENTS_TOPIC, SUMMARY_TOPICS, Summary, retry_topic
from drainpipe.selfmetrics import SelfMetrics
from drainpipe.store import Store, StoredEvent

log = logging.getLogger(__name__)

TOPICS = (*SUMMARY_TOPICS, EVENTS_TOPIC)
RETRY_TOPICS = tuple(retry_topic(t) for t in TOPICS)
MAX_BATCH = 1024
MAX_BACKOFF_S = 30.0
MAX_BLOCK_S = 240.0  # under Kafka's default max.poll.interval.ms (300 s)


class Outcome(enum.Enum):
    STORED = "stored"  # in the store or parked in RETRY, and committed
    STOPPED = "stopped"  # asked to stop before it landed; not committed
    REJOIN = "rejoin"  # still failing after MAX_BLOCK_S; not committed


def decode(
    messages: list[Message], metrics: SelfMetrics
) -> tuple[list[Summary], list[StoredEvent]]:
    """Latest version of each summary key, and all events, of a batch of messages."""
    latest: dict[bytes, Summary] = {}
    events: list[StoredEvent] = []
    for m in messages:
        topic = m.topic.removeprefix("RETRY.")
        try:
            if topic == EVENTS_TOPIC:
                batch = codec.decode_events(m.value)
                events.extend(StoredEvent(batch.owner, e) for e in batch.events)
            else:
                s = codec.decode_summary(m.value)
                have = latest.get(m.key)
                if have is None or s.n >= have.n:
                    latest[m.key] = s
        except codec.DecodeError as exc:
            metrics.bad_messages.labels(m.topic).inc()
            log.error(
                "sink.bad_message", extra={"topic": m.topic, "offset": m.offset, "error": str(exc)}
            )
    return list(latest.values()), events


class SinkWorker:
    """Consumes `topics` as consumer group `group`; see the module docstring."""

    def __init__(
        self,
        bus: Bus,
        store: Store,
        metrics: SelfMetrics,
        retry: Producer | None = None,
        group: str = "sink",
        topics: tuple[str, ...] = TOPICS,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.retry = retry
        self.group = group
        self.topics = topics
        self.bus = bus
        self._consumer = bus.consumer(group)

    def _on_assign(self, assigned: Mapping[TopicPartition, Position]) -> None:
        log.info(f"{self.group}.assigned", extra={"partitions": len(assigned)})

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe(self.topics, self._on_assign)
        try:
            while True:
                messages = self._consumer.poll(MAX_BATCH, 0.1)
                if messages:
                    outcome = self._write(messages, stop)
                    if outcome is Outcome.STOPPED:
                        return
                    if outcome is Outcome.REJOIN:
                        # Kafka evicts a member that does not poll for max.poll.interval.ms;
                        # leave first and rejoin at the committed offset to retry the batch.
                        self._consumer.close()
                        self._consumer = self.bus.consumer(self.group)
                        self._consumer.subscribe(self.topics, self._on_assign)
                elif stop.is_set():
                    return  # stopped and caught up: what upstream flushed is stored
        finally:
            self._consumer.close()

    def _store(self, summaries: list[Summary], events: list[StoredEvent]) -> None:
        if summaries:
            self.store.write_summaries(summaries)
        if events:
            self.store.write_events(events)
        self.metrics.summaries_written.inc(len(summaries))
        self.metrics.events_written.inc(len(events))

    def _write(self, messages: list[Message], stop: threading.Event) -> Outcome:
        """Store (or park in RETRY) and commit, retrying in place with backoff."""
        summaries, events = decode(messages, self.metrics)
        backoff = 0.1
        give_up = time.monotonic() + MAX_BLOCK_S
        while True:
            try:
                self._store(summaries, events)
                break
            except Exception as exc:
                self.metrics.sink_failures.inc()
                if self.retry is not None:
                    self._park(messages, exc)
                    break
                log.error(
                    f"{self.group}.write_failed", extra={"error": str(exc), "retry_in_s": backoff}
                )
                if stop.wait(backoff):
                    return Outcome.STOPPED  # not committed: replayed on the next start
                if time.monotonic() > give_up:
                    return Outcome.REJOIN
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        positions: dict[TopicPartition, Position] = {}
        for m in messages:
            positions[(m.topic, m.partition)] = Position(m.offset + 1)
        self._consumer.commit(positions)
        return Outcome.STORED

    def _park(self, messages: list[Message], exc: Exception) -> None:
        assert self.retry is not None
        records = [OutRecord(retry_topic(m.topic), m.key, m.value) for m in messages]
        self.retry.send(records).result()
        log.warning(
            f"{self.group}.parked_in_retry", extra={"messages": len(records), "error": str(exc)}
        )


def retry_worker(bus: Bus, store: Store, metrics: SelfMetrics) -> SinkWorker:
    """Consumes the RETRY topics and retries each batch in place until it lands."""
    return SinkWorker(bus, store, metrics, retry=None, group="retry", topics=RETRY_TOPICS)
