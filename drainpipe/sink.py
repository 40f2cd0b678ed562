"""Sink worker: consume summary and event topics, write them to the store, commit offsets.

Positions are committed only after the store's transaction commits, so a crash replays
the last batch, which the store's idempotent writes absorb.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from drainpipe import codec
from drainpipe.bus import Bus, Message, Position, TopicPartition
from drainpipe.model import EVENTS_TOPIC, SUMMARY_TOPICS, Summary
from drainpipe.selfmetrics import SelfMetrics
from drainpipe.store import Store, StoredEvent

log = logging.getLogger(__name__)

GROUP = "sink"
TOPICS = (*SUMMARY_TOPICS, EVENTS_TOPIC)
MAX_BATCH = 1024
MAX_BACKOFF_S = 30.0


def decode(
    messages: list[Message], metrics: SelfMetrics
) -> tuple[list[Summary], list[StoredEvent]]:
    """Latest version of each summary key, and all events, of a batch of messages."""
    latest: dict[bytes, Summary] = {}
    events: list[StoredEvent] = []
    for m in messages:
        try:
            if m.topic == EVENTS_TOPIC:
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
    def __init__(self, bus: Bus, store: Store, metrics: SelfMetrics) -> None:
        self.store = store
        self.metrics = metrics
        self._consumer = bus.consumer(GROUP)

    def _on_assign(self, assigned: Mapping[TopicPartition, Position]) -> None:
        log.info("sink.assigned", extra={"partitions": len(assigned)})

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe(TOPICS, self._on_assign)
        try:
            while not stop.is_set():
                messages = self._consumer.poll(MAX_BATCH, 0.1)
                if messages:
                    self._write(messages, stop)
        finally:
            self._consumer.close()

    def _write(self, messages: list[Message], stop: threading.Event) -> None:
        summaries, events = decode(messages, self.metrics)
        backoff = 0.1
        while True:
            try:
                if summaries:
                    self.store.write_summaries(summaries)
                if events:
                    self.store.write_events(events)
                break
            except Exception as exc:
                self.metrics.sink_failures.inc()
                log.error("sink.write_failed", extra={"error": str(exc), "retry_in_s": backoff})
                if stop.wait(backoff):
                    return  # not committed: replayed on the next start
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        self.metrics.summaries_written.inc(len(summaries))
        self.metrics.events_written.inc(len(events))
        positions: dict[TopicPartition, Position] = {}
        for m in messages:
            positions[(m.topic, m.partition)] = Position(m.offset + 1)
        self._consumer.commit(positions)
