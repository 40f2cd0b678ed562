"""KafkaConsumer: one consumer-group member; assignment, polling and committing positions.

`poll` returns as soon as one message is there, like the embedded bus. `commit` writes
the positions topic's records before it commits the offsets to the group, and
assignment recovers committed metadata from them (see `positions`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Final

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from drainpipe.bus import (
    BusUnavailable,
    Message,
    OnAssign,
    OnRevoke,
    Position,
    TopicPartition,
)
from drainpipe.bus.kafka.cluster import Cluster, Item
from drainpipe.bus.kafka.errors import _TRANSIENT, _error_text
from drainpipe.bus.kafka.lag import EndOffsets
from drainpipe.bus.kafka.membership import error_text, is_cooperative, listing, member_config
from drainpipe.bus.kafka.positions import _position_key, _PositionRecord, _PositionsReader

# One logger name for every module of the package.
log = logging.getLogger("drainpipe.bus.kafka")

BROKER_METADATA_MAX = 4000
# A commit that lands between a rebalance's JoinGroup and SyncGroup (Kafka answers
# REBALANCE_IN_PROGRESS) or under the generation just ended: nothing is wrong, but the
# offsets are not stored.
_COMMIT_LATER: Final = frozenset({KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION})


def _for_broker(metadata: str) -> str:
    return metadata if len(metadata.encode()) <= BROKER_METADATA_MAX else ""


@dataclass(frozen=True, slots=True)
class _Committed:
    """A committed offset (None: nothing committed) and its metadata."""

    offset: int | None
    metadata: str


class KafkaConsumer:
    """One consumer-group member: manual commits, positions reported on assignment.

    Like the confluent-kafka consumer under it, it is used from one thread.
    """

    def __init__(self, bus: Cluster, group: str) -> None:
        self.group = group
        self._bus = bus
        self._group_id = bus.group_id(group)
        config = member_config(bus, self._group_id)
        self._incremental = is_cooperative(config)
        self._consumer = confluent_kafka.Consumer(
            {
                **config,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                # A consumer working through a backlog fills its local queue; by default
                # librdkafka then stops fetching for a whole second, and the queue runs
                # dry long before that second ends.
                "fetch.queue.backoff.ms": 20,
            }
        )
        self._positions = _PositionsReader(bus, self._group_id)
        self._known: dict[TopicPartition, _Committed] = {}  # Kafka topic names
        self._names: dict[str | None, str] = {}  # Kafka topic -> model name, for poll
        self._with_metadata: set[TopicPartition] = set()
        self._lost: frozenset[TopicPartition] = frozenset()
        self._failed: BaseException | None = None
        self._revokes = 0  # revoke callbacks run so far, to tell one happened in a poll
        self._closed = False
        self._ends = EndOffsets(bus)  # for lag()

    # -- assignment -------------------------------------------------------------------
    def subscribe(
        self, topics: Sequence[str], on_assign: OnAssign, on_revoke: OnRevoke | None = None
    ) -> None:
        def assigned(consumer: confluent_kafka.Consumer, parts: list[KafkaPartition]) -> None:
            if not parts:  # a cooperative rebalance that gives this member nothing new
                return
            try:
                resolved = self._resolve(parts)
            except BaseException as exc:
                self._failed = exc
                raise
            self._known.update(resolved)
            at = [
                KafkaPartition(
                    t, p, confluent_kafka.OFFSET_INVALID if c.offset is None else c.offset
                )
                for (t, p), c in resolved.items()
            ]
            # Cooperative assignment hands over only what is added; eager, everything.
            if self._incremental:
                consumer.incremental_assign(at)
            else:
                consumer.assign(at)
            log.info(
                "bus.assigned",
                extra={
                    "group": self.group,
                    "partitions": len(parts),
                    "holding": len(self._known),
                    "added": listing(self._bus, parts),
                },
            )
            on_assign(
                {
                    (self._bus.logical(t), p): Position(c.offset or 0, c.metadata)
                    for (t, p), c in resolved.items()
                }
            )

        def revoked(consumer: confluent_kafka.Consumer, parts: list[KafkaPartition]) -> None:
            if not parts:
                return
            try:
                if on_revoke is not None:
                    on_revoke([(self._bus.logical(tp.topic), tp.partition) for tp in parts])
            finally:
                self._revokes += 1
                for tp in parts:
                    self._known.pop((tp.topic, tp.partition), None)
                    self._with_metadata.discard((tp.topic, tp.partition))
                log.info(
                    "bus.revoked",
                    extra={
                        "group": self.group,
                        "partitions": len(parts),
                        "holding": len(self._known),
                        "removed": listing(self._bus, parts),
                    },
                )

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
        records = self._positions.read(need) if need else {}
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
        revokes = self._revokes
        got = self._consumer.consume(max_messages, 0)
        if not got:
            got = self._consumer.consume(1, timeout_s)
            if got and max_messages > 1:
                more = self._consumer.consume(max_messages - 1, 0)
                if self._revokes != revokes:
                    # librdkafka drops a revoked partition's messages within one consume
                    # call, not those an earlier call of this poll returned: they would
                    # reach a member that no longer reads the partition.
                    known = self._known
                    got = [m for m in got if (m.topic(), m.partition()) in known]
                got += more
        # The loop runs once per message: names bound locally, each Kafka topic's name looked
        # up in a dict, and the Message built with tuple.__new__, which skips the Python
        # frame of the named tuple's __new__ (same object, under half the cost).
        out: list[Message] = []
        append = out.append
        names = self._names
        new = tuple.__new__
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
                raise BusUnavailable(
                    error_text(self.group, self._group_id, self._bus.instance_id, m, err)
                )
            topic = m.topic()
            try:
                name = names[topic]
            except KeyError:
                name = self._name_of(topic)
            # A message without an error has its topic, partition and offset.
            append(
                new(Message, (name, m.partition(), m.offset(), m.key() or b"", m.value() or b""))
            )
        return out

    def _name_of(self, topic: str | None) -> str:
        """The `model` name of a consumed message's Kafka topic, remembered for the next."""
        assert topic is not None
        name = self._names[topic] = self._bus.logical(topic)
        return name

    def rewind(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Seek each partition back (librdkafka drops what it had fetched of it)."""
        for (topic, partition), offset in offsets.items():
            try:
                self._consumer.seek(KafkaPartition(self._bus.topic(topic), partition, offset))
            except KafkaException as exc:
                raise BusUnavailable(
                    f"group {self._group_id}: cannot read {topic}[{partition}] again from "
                    f"offset {offset}: {_error_text(exc)}"
                ) from exc

    # -- committing -------------------------------------------------------------------
    def commit(self, positions: Mapping[TopicPartition, Position]) -> bool:
        """Store positions: metadata records first, then the group's offsets (see
        `positions`). False when the coordinator was rebalancing the group and took none
        or only part of them: a member keeps its partitions through a cooperative
        rebalance and commits again later."""
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
            return True
        self._write_positions(wanted)
        # Brokers refuse metadata over offset.metadata.max.bytes (4096 by default); the
        # positions topic holds it whole, and empty metadata sends readers there.
        offsets = [
            KafkaPartition(t, p, pos.offset, metadata=_for_broker(pos.metadata))
            for (t, p), pos in wanted.items()
        ]
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() in _COMMIT_LATER:
                return self._deferred(len(wanted), err)
            raise BusUnavailable(
                f"group {self._group_id}: offset commit failed: {_error_text(exc)}"
            ) from exc
        later: KafkaError | None = None
        for done in result:
            if done.error is not None and done.error.code() in _COMMIT_LATER:
                later = done.error
                wanted.pop((done.topic, done.partition), None)
            elif done.error is not None:
                raise BusUnavailable(
                    f"group {self._group_id}: offset commit of {done.topic}[{done.partition}] "
                    f"failed: {done.error.str()}"
                )
        for tp, pos in wanted.items():
            self._known[tp] = _Committed(pos.offset, pos.metadata)
        return later is None or self._deferred(len(result) - len(wanted), later)

    def _deferred(self, partitions: int, err: KafkaError) -> bool:
        """A commit the group coordinator asked for again later: left for the next one.
        The positions records written for it still name the committed offset as their
        previous one, so they stay readable."""
        log.info(
            "bus.commit_deferred",
            extra={"group": self.group, "partitions": partitions, "error": err.str()},
        )
        return False

    def _write_positions(self, wanted: Mapping[TopicPartition, Position]) -> None:
        items: list[Item] = []
        for (topic, partition), pos in wanted.items():
            if not pos.metadata and (topic, partition) not in self._with_metadata:
                continue
            prev = self._known[(topic, partition)]
            record = _PositionRecord(pos.offset, pos.metadata, prev.offset, prev.metadata)
            key = _position_key(self._group_id, topic, partition)
            items.append((self._positions.topic, self._positions.partition, key, record.encode()))
            self._with_metadata.add((topic, partition))
        if not items:
            return
        try:
            self._bus.pipe().send_items(items).result(timeout=self._bus.timeout_s)
        except FutureTimeout as exc:
            raise BusUnavailable(
                f"group {self._group_id}: {self._positions.topic} did not acknowledge "
                f"committed metadata within {self._bus.timeout_s:g} s"
            ) from exc

    @property
    def behind(self) -> bool:
        """Not known without asking the brokers for end offsets; a short poll stands."""
        return False

    def lag(self) -> int | None:
        """Messages left in this member's partitions, asked of the brokers (see `lag`)."""
        committed = {k: c.offset for k, c in self._known.items()}
        try:
            return self._ends.unread(self._consumer, committed)
        except KafkaException as exc:
            raise BusUnavailable(f"group {self._group_id}: cannot read end offsets: {exc}") from exc

    def close(self) -> None:
        """Close the member: on_revoke runs and may commit, and a dynamic member leaves
        its group (a static one keeps its place until its session times out)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._consumer.close()
        finally:
            self._positions.close()
            self._bus.forget(self)
