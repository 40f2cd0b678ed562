"""Sink workers: summary and event topics into the store; failed writes via RETRY topics.

Positions are committed only after the store's transaction commits (or, on failure, after
the batch is durable in its RETRY topic), so a crash replays the last batch, which the
store's idempotent writes absorb. When a rebalance takes partitions away, everything
polled is stored and committed first, so the next member starts where this one stopped.
With no retry producer (the embedded default) a failed write is retried in place with
backoff. The retry worker consumes RETRY topics and retries forever, so an outage of one
store shard never blocks fresh data.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from drainpipe import codec
from drainpipe.bus import Bus, Message, OutRecord, Position, Producer, TopicPartition
from drainpipe.clock import SYSTEM, Clock
from drainpipe.codec import EncodedSummary
from drainpipe.model import EVENTS_TOPIC, SUMMARY_TOPICS, retry_topic
from drainpipe.store import Store, StoredEvent
from drainpipe.telemetry.health import Stage
from drainpipe.telemetry.metrics import LAG_EVERY_S, SelfMetrics

log = logging.getLogger(__name__)

TOPICS = (*SUMMARY_TOPICS, EVENTS_TOPIC)
RETRY_TOPICS = tuple(retry_topic(t) for t in TOPICS)
_EVENT_TOPICS = frozenset((EVENTS_TOPIC, retry_topic(EVENTS_TOPIC)))
# A batch only grows past one poll while the write before it is in flight, and then up to
# MAX_BATCH messages or MAX_ROWS distinct keys (COPY goes 1,024 rows at a time): enough
# versions collapse when the sink is behind, and a write of new keys stays short enough
# to overlap the next poll.
MAX_BATCH = 65536
MAX_ROWS = 8192
# Retries in place back off to at most this: a store that comes back is written to
# within seconds, and a log line per try is few enough at this rate.
MAX_BACKOFF_S = 5.0
MAX_BLOCK_S = 240.0  # under Kafka's default max.poll.interval.ms (300 s)
REVOKE_BUDGET_S = 30.0  # to store what was polled before partitions move on


class Outcome(enum.Enum):
    STORED = "stored"  # in the store or parked in RETRY, and committed
    STOPPED = "stopped"  # asked to stop before it landed; not committed
    REJOIN = "rejoin"  # still failing after MAX_BLOCK_S; not committed


class Pending:
    """What one store transaction will write: the last version of each summary key and
    every event of the messages added so far, and the positions they take the group to.

    Versions of one key collapse as they are added, so a batch that grows while the store
    is busy with the one before costs little more to write; only the survivors are
    decoded, and only their key fields: the store keeps the bus value as it is. The last
    version in the log is the newest but after a rollup restart, whose replay may publish
    a window partly rebuilt after its complete version; the store keeps whichever has
    more measurements, and the replay publishes the complete window again, so that
    ordering costs nothing.
    """

    def __init__(self, metrics: SelfMetrics) -> None:
        self.metrics = metrics
        self.messages: list[Message] = []
        self.latest: dict[bytes, Message] = {}
        self.events: list[StoredEvent] = []
        self._last: dict[TopicPartition, int] = {}

    @property
    def positions(self) -> dict[TopicPartition, Position]:
        return {tp: Position(offset + 1) for tp, offset in self._last.items()}

    def add(self, messages: list[Message]) -> None:
        self.messages.extend(messages)
        latest, last = self.latest, self._last
        for m in messages:
            last[m.topic, m.partition] = m.offset
            if m.topic in _EVENT_TOPICS:
                try:
                    batch = codec.decode_events(m.value)
                except codec.DecodeError as exc:
                    self._bad(m, exc)
                    continue
                self.events.extend(StoredEvent(batch.owner, e) for e in batch.events)
            else:
                latest[m.key] = m

    def summaries(self) -> list[EncodedSummary]:
        out = []
        for m in self.latest.values():
            try:
                out.append(codec.decode_head(m.value))
            except codec.DecodeError as exc:
                self._bad(m, exc)
        return out

    def _bad(self, m: Message, exc: Exception) -> None:
        self.metrics.bad_messages.labels(m.topic).inc()
        log.error(
            "sink.bad_message", extra={"topic": m.topic, "offset": m.offset, "error": str(exc)}
        )


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
        clock: Clock = SYSTEM,
        stage: Stage | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.stage = stage
        self.metrics = metrics
        self.retry = retry
        self.group = group
        self.topics = topics
        self.bus = bus
        self._consumer = bus.consumer(group)
        # Run's state, here because a revoke (inside a poll) finishes it.
        self._pending: tuple[Future[Outcome], Pending] | None = None
        self._batch = Pending(metrics)
        self._stop = threading.Event()
        self._assigned: set[TopicPartition] = set()
        self._committed: dict[TopicPartition, int] = {}  # offset, per assigned partition
        # A revoke dropped polled messages uncommitted: those of the partitions this
        # member keeps are behind its read position, so it reads them again.
        self._reread = False

    def _on_assign(self, assigned: Mapping[TopicPartition, Position]) -> None:
        self._assigned.update(assigned)
        self._committed.update((tp, pos.offset) for tp, pos in assigned.items())
        log.info(f"{self.group}.assigned", extra={"partitions": len(assigned)})

    def _on_revoke(self, revoked: Sequence[TopicPartition]) -> None:
        """Store and commit everything polled so far before partitions go to another
        member: it resumes at this commit. Committed later, the positions would overwrite
        that member's progress with older ones (a replay), or be refused as going back
        when the partitions come back to this member (a crash)."""
        log.info(f"{self.group}.revoked", extra={"partitions": len(revoked)})
        pending, self._pending = self._pending, None
        batch, self._batch = self._batch, Pending(self.metrics)
        try:
            # Bounded: the moved partitions wait for this member. What is not stored in
            # time is not committed: whoever gets the partitions reads it again, and so
            # must this member for those it keeps (see `run`).
            give_up = self.clock.monotonic() + REVOKE_BUDGET_S
            if pending is not None:
                future, done = pending
                try:
                    outcome = future.result(timeout=REVOKE_BUDGET_S)
                except FutureTimeout:
                    self._reread = True
                    return
                if outcome is not Outcome.STORED:
                    self._reread = True
                    return  # neither is committed: the batch after it must not pass it
                self._commit(done.positions)
            if batch.messages:
                outcome = self._write(batch, batch.summaries(), self._stop, give_up)
                if outcome is Outcome.STORED:
                    self._commit(batch.positions)
                else:
                    self._reread = True
        finally:
            for tp in revoked:
                self._assigned.discard(tp)
                self._committed.pop(tp, None)

    def _commit(self, positions: Mapping[TopicPartition, Position]) -> None:
        """Commit the positions that move forward. After a revoke gave a partition back to
        this member, messages it had polled before are read again from the commit made
        then; a batch of those must not take the partition back."""
        ahead = {
            tp: p
            for tp, p in positions.items()
            if tp in self._assigned and p.offset > self._committed.get(tp, -1)
        }
        if ahead and self._consumer.commit(ahead):
            self._committed.update((tp, p.offset) for tp, p in ahead.items())

    def run(self, stop: threading.Event) -> None:
        """Consume until stop is set and everything polled is stored and committed.

        Two stages overlap: while a writer thread stores one batch (mostly waiting on
        the database), this thread polls and adds to the next (up to MAX_BATCH messages
        or MAX_ROWS keys), so batches grow exactly when the store falls behind. Positions
        are committed here, by the thread that polls, once the batch they cover is
        stored; a batch collected while the one before failed for good is dropped
        uncommitted and read again.
        """
        self._stop = stop
        self._next_lag = self.clock.monotonic()
        self._pending, self._batch = None, Pending(self.metrics)
        self._consumer.subscribe(self.topics, self._on_assign, self._on_revoke)
        self.metrics.group_partitions.labels(self.group).set(len(self.topics) * self.bus.partitions)
        writer = ThreadPoolExecutor(1, thread_name_prefix=f"{self.group}-writer")
        try:
            while True:
                batch = self._batch
                room = MAX_BATCH - len(batch.messages) if len(batch.latest) < MAX_ROWS else 0
                got: list[Message] = []
                if room > 0:
                    # Short polls while a write is in flight, to notice it end. A revoke
                    # inside the poll stores and commits both batches and starts a new one;
                    # the poll returns nothing of the partitions it took away.
                    got = self._consumer.poll(room, 0.01 if self._pending else 0.1)
                    if self._reread:
                        # From the commit, as the partitions' new owners read theirs.
                        self._reread = False
                        self._batch = Pending(self.metrics)
                        self._consumer.rewind({tp: self._committed[tp] for tp in self._assigned})
                        continue
                    batch = self._batch
                    batch.add(got)
                if self.stage is not None:
                    caught_up = room > 0 and len(got) < room and not self._consumer.behind
                    self.stage.beat(caught_up=caught_up, assigned=bool(self._assigned))
                if self.clock.monotonic() >= self._next_lag:
                    self._next_lag = self.clock.monotonic() + LAG_EVERY_S
                    self.metrics.sample_lag(self.group, self._consumer.lag)
                    self.metrics.consumer_partitions.labels(self.group).set(len(self._assigned))
                if self._pending is not None:
                    future, done = self._pending
                    if not future.done() and room > 0 and batch.messages:
                        continue
                    self._pending = None
                    outcome = future.result()
                    if outcome is Outcome.STOPPED:
                        return
                    if outcome is Outcome.REJOIN:
                        # Kafka evicts a member that does not poll for max.poll.interval.ms;
                        # leave first and rejoin at the committed offset to retry the batch.
                        self._batch = Pending(self.metrics)  # read again from the commit
                        self._consumer.close()
                        self._consumer = self.bus.consumer(self.group)
                        self._consumer.subscribe(self.topics, self._on_assign, self._on_revoke)
                        continue
                    self._commit(done.positions)
                if batch.messages:
                    # Decoded here, not by the writer: the writer thread is the one to keep
                    # short when every message is a new key.
                    summaries = batch.summaries()
                    self._pending = (writer.submit(self._write, batch, summaries, stop), batch)
                    self._batch = Pending(self.metrics)
                elif self._pending is None and stop.is_set():
                    return  # stopped and caught up: what upstream flushed is stored
        finally:
            writer.shutdown(wait=True)  # a write in flight ends (stop cuts its retries short)
            # Leaving revokes, which must not store more: what is uncommitted on the way
            # out (a write cut short by stop, or an error) is replayed on the next start.
            self._pending, self._batch = None, Pending(self.metrics)
            self._consumer.close()

    def _store(self, summaries: list[EncodedSummary], events: list[StoredEvent]) -> None:
        if summaries:
            self.store.write_summaries(summaries)
        if events:
            self.store.write_events(events)
        self.metrics.summaries_written.inc(len(summaries))
        self.metrics.events_written.inc(len(events))

    def _write(
        self,
        batch: Pending,
        summaries: list[EncodedSummary],
        stop: threading.Event,
        give_up: float | None = None,
    ) -> Outcome:
        """Store (or park in RETRY), retrying in place with backoff until `give_up`
        (monotonic; MAX_BLOCK_S from now by default); the caller commits."""
        backoff = 0.1
        failed = 0
        started = self.clock.monotonic()
        if give_up is None:
            give_up = started + MAX_BLOCK_S
        while True:
            try:
                self._store(summaries, batch.events)
                if self.stage is not None:
                    self.stage.recovered()
                self._landed(batch, failed, started)
                return Outcome.STORED
            except Exception as exc:
                failed += 1
                self.metrics.sink_failures.inc()
                if self.stage is not None:
                    self.stage.failing(exc)
                if self.retry is not None:
                    self._park(batch.messages, exc)
                    return Outcome.STORED
                log.error(
                    f"{self.group}.write_failed", extra={"error": str(exc), "retry_in_s": backoff}
                )
                if stop.wait(backoff):
                    return Outcome.STOPPED  # not committed: replayed on the next start
                if self.clock.monotonic() > give_up:
                    return Outcome.REJOIN
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _landed(self, batch: Pending, failed: int, started: float) -> None:
        """Say so when a write lands after failing, and when parked messages are stored:
        how anyone watching knows a store outage or a RETRY backlog is over."""
        if failed:
            self.metrics.writes_recovered.labels(self.group).inc()
            log.info(
                f"{self.group}.write_recovered",
                extra={"failed_tries": failed, "messages": len(batch.messages),
                       "seconds": round(self.clock.monotonic() - started, 3)},
            )  # fmt: skip
        if self.group == "retry" and batch.messages:
            self.metrics.retry_stored.inc(len(batch.messages))
            log.info("retry.stored", extra={"messages": len(batch.messages)})

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
