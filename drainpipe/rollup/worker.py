"""Rollup worker: consume raw topics, feed the core, produce summaries, commit offsets.

Commit order, every `flush_interval_s` and at shutdown:
1. `core.flush()` takes every changed window;
2. the summaries are produced to their summary topics and awaited until durable;
3. only then `core.positions()` is committed (offsets plus watermark).
A crash between any two steps replays from the previous commit and re-emits the same
summaries, which the store ignores or replaces (see `window` for why this is exact).
So after an error nothing more is flushed or committed: windows taken by a flush that
failed are not in the log, and a commit past them would lose them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from drainpipe import accum, codec
from drainpipe.bus import Bus, Message, OutRecord, Position, TopicPartition
from drainpipe.clock import SYSTEM, Clock
from drainpipe.model import (
    CUSTOM,
    MINUTE_MS,
    ROUTER,
    SCHEMA_BY_TOPIC,
    SCHEMAS,
    schema_of_family,
    summary_key,
)
from drainpipe.rollup.frames import Frames
from drainpipe.rollup.window import RawMessage, RollupCore
from drainpipe.telemetry.health import Stage
from drainpipe.telemetry.metrics import LAG_EVERY_S, SelfMetrics

log = logging.getLogger(__name__)

GROUP = "rollup"
RAW_TOPICS = tuple(s.topic for s in SCHEMAS)
POLL_MAX = 2000


class RollupWorker:
    def __init__(
        self,
        bus: Bus,
        metrics: SelfMetrics,
        flush_interval_s: float = 1.0,
        lateness_s: int = 300,
        clock: Clock = SYSTEM,
        stage: Stage | None = None,
        max_future_s: int = 300,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.stage = stage
        self.metrics = metrics
        self.flush_interval_s = flush_interval_s
        # Ingress refuses lines further ahead than max_future_s: the partitions' bound.
        self.core = RollupCore(lateness_ms=lateness_s * 1000, skew_ms=max_future_s * 1000)
        self._consumer = bus.consumer(GROUP)
        self._producer = bus.producer()
        self._committed: dict[TopicPartition, Position] = {}
        self._reported_late: dict[str, int] = {}
        self._reported_late_by_owner: dict[str, int] = {}
        self._failed = False  # an error stopped the run: flush and commit nothing more
        self.frames = Frames()  # batches of retried frames already counted
        self._newest_ms: int | None = None  # the newest watermark read, for the lag gauge

    def _repeated(
        self, m: Message, owner: str, pt: str, series: str, frame: str, ts: np.ndarray
    ) -> bool:
        newest = int(ts.max()) if ts.size else 0
        key = (m.topic, owner, pt, series, frame)
        if self.frames.repeated((m.topic, m.partition), m.offset, key, newest):
            self.metrics.duplicate_batches.inc()
            return True
        return False

    def _forget_frames(self) -> None:
        """Drop frames whose rows are all too late to count now (at every flush)."""
        slack = self.core.lateness_ms + self.core.skew_ms + 2 * MINUTE_MS
        for tp, part in self.core.parts.items():
            if part.watermark_ms is not None:
                self.frames.forget_before(tp, part.watermark_ms - slack)

    def _sample_lag(self) -> None:
        self.metrics.sample_lag(GROUP, self._consumer.lag)
        self.metrics.consumer_partitions.labels(GROUP).set(len(self._committed))
        marks = [p.watermark_ms for p in self.core.parts.values() if p.watermark_ms is not None]
        if marks:
            self._newest_ms = max(marks)
        if self._newest_ms is not None:
            # Without partitions it keeps growing from the newest minute this process read.
            self.metrics.event_time_lag.set(max(0, self.clock.now_ms() - self._newest_ms) / 1000)

    def _on_assign(self, assigned: Mapping[TopicPartition, Position]) -> None:
        for tp, pos in assigned.items():
            self.core.restore(tp, pos)
            self._committed[tp] = pos
        log.info("rollup.assigned", extra={"partitions": len(assigned)})

    def _on_revoke(self, revoked: Sequence[TopicPartition]) -> None:
        # After an error, leaving the group revokes too: nothing may be flushed then.
        if not self._failed:
            self.flush_and_commit()
        for tp in revoked:
            self.core.revoke(tp)
            self._committed.pop(tp, None)
            self.frames.revoke(tp)  # rebuilt from the commit by whoever reads it next

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe(RAW_TOPICS, self._on_assign, self._on_revoke)
        self.metrics.group_partitions.labels(GROUP).set(len(RAW_TOPICS) * self.bus.partitions)
        next_flush = self.clock.monotonic() + self.flush_interval_s
        next_lag = self.clock.monotonic()
        try:
            while not stop.is_set():
                batch: list[RawMessage] = []
                polled = self._consumer.poll(POLL_MAX, 0.1)
                for m in polled:
                    schema = SCHEMA_BY_TOPIC[m.topic]
                    family = schema.family
                    try:
                        owner, pt, cols, series, frame = codec.decode_series(schema, m.value)
                    except codec.DecodeError as exc:
                        self.metrics.bad_messages.labels(m.topic).inc()
                        log.error(
                            "rollup.bad_message",
                            extra={"topic": m.topic, "offset": m.offset, "error": str(exc)},
                        )
                        # No rows, but the offset is passed: it is not read again.
                        owner, pt, series, frame = "", "", "", ""
                        cols = {name: np.empty(0, dtype) for name, dtype in schema.columns}
                    if frame and self._repeated(m, owner, pt, series, frame, cols["ts_ms"]):
                        # A retried frame another ingress process accepted too: its rows
                        # are already counted. The offset is passed, as for any message.
                        cols = {name: np.empty(0, dtype) for name, dtype in schema.columns}
                    if schema is CUSTOM:
                        family, cols = f"custom.{series}", accum.custom_columns(cols)
                    elif schema is ROUTER:
                        cols = accum.router_columns(cols)
                    batch.append(((m.topic, m.partition), m.offset, family, owner, pt, cols))
                if batch:
                    self.core.add_many(batch)  # one vectorized pass per poll
                if self.clock.monotonic() >= next_flush:
                    self.flush_and_commit()
                    self._forget_frames()
                    next_flush = self.clock.monotonic() + self.flush_interval_s
                if self.stage is not None:
                    caught_up = len(polled) < POLL_MAX and not self._consumer.behind
                    self.stage.beat(caught_up=caught_up, assigned=bool(self._committed))
                if self.clock.monotonic() >= next_lag:
                    next_lag = self.clock.monotonic() + LAG_EVERY_S
                    self._sample_lag()
        except BaseException:
            self._failed = True
            self._consumer.close()  # uncommitted: read again by whoever runs next
            raise
        try:
            self.flush_and_commit()
        finally:
            self._consumer.close()

    def flush_and_commit(self) -> int:
        summaries = self.core.flush()
        if summaries:
            records = [
                OutRecord(schema_of_family(s.family).summary_topic, summary_key(s), value)
                for s, value in zip(summaries, codec.encode_summaries(summaries), strict=True)
            ]
            self._producer.send(records).result()
            self.metrics.summaries_flushed.inc(len(summaries))
        positions = self.core.positions()
        changed = {tp: p for tp, p in positions.items() if self._committed.get(tp) != p}
        if changed and self._consumer.commit(changed):
            self._committed.update(changed)
        for family, n in self.core.dropped_late.items():
            seen = self._reported_late.get(family, 0)
            if n > seen:
                self.metrics.late_dropped.labels(family).inc(n - seen)
                self._reported_late[family] = n
        for owner, n in self.core.dropped_late_by_owner.items():
            seen = self._reported_late_by_owner.get(owner, 0)
            if n > seen:
                self.metrics.late_dropped_by_app.labels(owner).inc(n - seen)
                self._reported_late_by_owner[owner] = n
        self.metrics.open_windows.set(self.core.open_windows())
        return len(summaries)
