"""The alerts stage: summary topics in, minute values kept, closed minutes judged,
notices sent (the loop around `evaluate`, on the embedded bus or Kafka).

Each poll's minute values are written to the alerts database before the poll's bus
positions are committed, so a restart reads again at most what it already has (a
value is kept from the version of its summary with the most measurements, as the store
keeps summaries). A minute is judged once it is closed: `delay_s` after its end, the
lateness by default, so late data has landed; data later still counts from then on
(see `evaluate`). Judging waits until the consumer has read to the end of its
partitions (`Consumer.lag`), so a restarted stage does not judge minutes whose summaries
it has not read yet; the delay covers a rollup that is a little behind. Notices go out from the
outbox with retries; see `state` for what survives a crash.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent import futures
from typing import Any

from drainpipe import codec
from drainpipe.alert import notify, targets, values
from drainpipe.alert.evaluate import State, judge
from drainpipe.alert.rules import Rule
from drainpipe.alert.state import AlertState, Outgoing, StoredRule
from drainpipe.bus import Bus, Message, Position, TopicPartition
from drainpipe.clock import SYSTEM, Clock
from drainpipe.config import Config
from drainpipe.model import EVENTS_TOPIC, MINUTE_MS, SUMMARY_TOPICS
from drainpipe.telemetry.health import Stage
from drainpipe.telemetry.metrics import SelfMetrics

log = logging.getLogger(__name__)

ALERTS_GROUP = "alerts"
LAG_CHECK_S = 2.0
SEND_EVERY_S = 0.5
SENDERS = 8  # receivers sent to at once
CATCH_UP_MS = 24 * 3_600_000  # a stage down longer judges only the last day
EVENTS_KEPT_MS = 3 * 3_600_000
SHOWN_EVENT_KINDS = frozenset(
    {"deploy", "release", "rollback", "restart", "cycle", "scale", "config", "crash", "error"}
)


class AlertWorker:
    def __init__(
        self,
        bus: Bus,
        state: AlertState,
        clock: Clock = SYSTEM,
        delay_s: float = 300.0,
        base_url: str = "http://127.0.0.1:5000",
        smtp: notify.Smtp | None = None,
        metrics: SelfMetrics | None = None,
        nets: tuple[targets.Network, ...] = (),
    ) -> None:
        self.bus = bus
        self.state = state
        self.clock = clock
        self.delay_ms = int(delay_s * 1000)
        self.base_url = base_url
        self.smtp = smtp
        self.nets = nets
        self.metrics = metrics or SelfMetrics()
        self.stage: Stage | None = None
        self._consumer = bus.consumer(ALERTS_GROUP)
        self._rules: dict[tuple[str, str, str], list[Rule]] = {}  # (owner, pt, family)
        self._all: list[StoredRule] = []
        self._version: object = None
        self._lag_ok = False
        self._lag_at = float("-inf")
        self._pool = futures.ThreadPoolExecutor(SENDERS, thread_name_prefix="alerts-send")
        # Outbox id -> (its send, its receiver, the rule, the row), until recorded.
        self._inflight: dict[int, tuple[futures.Future[None], str, Rule, Outgoing]] = {}

    @classmethod
    def of(
        cls,
        config: Config,
        bus: Bus,
        state: AlertState,
        clock: Clock = SYSTEM,
        metrics: SelfMetrics | None = None,
    ) -> AlertWorker:
        """The alerts stage of a config: its delay, links and mail server."""
        smtp = notify.smtp_of(config)
        return cls(
            bus, state, clock, config.judge_delay_s, config.base_url, smtp, metrics,
            targets.nets_of(config),
        )  # fmt: skip

    def _refresh(self) -> None:
        """Reload the rules when the alerts database changed. Called after each poll, so a
        summary produced after a rule was added is never judged without that rule."""
        version = self.state.version()
        if version == self._version:
            return
        self._version = version
        self._all = self.state.rules()
        by_key: dict[tuple[str, str, str], list[Rule]] = defaultdict(list)
        for stored in self._all:
            r = stored.rule
            by_key[r.owner, r.process_type, r.metric.family].append(r)
        self._rules = dict(by_key)

    def _take(self, messages: list[Message]) -> None:
        """Keep each message's minute values for the rules that read it."""
        rows: list[tuple[str, int, float | None, int]] = []
        events: list[tuple[str, int, str, str, str]] = []
        for m in messages:
            if m.topic == EVENTS_TOPIC:
                batch = codec.decode_events(m.value)
                events += [
                    (batch.owner, e.ts_ms, e.kind, e.process_type, e.text)
                    for e in batch.events if e.kind in SHOWN_EVENT_KINDS
                ]  # fmt: skip
                continue
            head = codec.decode_head(m.value)
            if head.period_s != 60:
                continue
            watching = self._rules.get((head.owner, head.process_type, head.family))
            if not watching:
                continue
            summary = codec.decode_summary(m.value)
            for rule in watching:
                rows.append(
                    (rule.id, summary.start_ms, values.value(rule.metric, summary), summary.n)
                )
        self.state.put_values(rows)
        self.state.put_events(events, self.clock.now_ms() - EVENTS_KEPT_MS)

    def _judge(self, now_ms: int) -> None:
        last_closed = (now_ms - self.delay_ms) // MINUTE_MS * MINUTE_MS - MINUTE_MS
        for stored in self._all:
            rule = stored.rule
            state = self.state.state(rule.id) or State(
                judged_ms=stored.created_ms // MINUTE_MS * MINUTE_MS - MINUTE_MS
            )
            assert state.judged_ms is not None
            first = max(state.judged_ms + MINUTE_MS, last_closed - CATCH_UP_MS)
            if first > last_closed:
                continue
            span = (rule.sensitivity - 1) * MINUTE_MS
            known = self.state.values(rule.id, first - span, last_closed)
            missing = values.value(rule.metric, None)  # 0 for counts, None for the rest
            minutes = range(first - span, last_closed + MINUTE_MS, MINUTE_MS)
            seen = {m: known.get(m, missing) for m in minutes}
            notices = []
            for minute in range(first, last_closed + MINUTE_MS, MINUTE_MS):
                state, found = judge(rule, state, minute, seen)
                notices += found
            events = self._recent_events(rule, first - span, last_closed + MINUTE_MS)
            self.state.judged(rule, state, notices, events, now_ms, last_closed - span)
            for n in notices:
                log.info(
                    "alert.judged",
                    extra={"app": rule.app, "rule_id": rule.id, "state": n.state,
                           "minute": notify.iso(n.minute_ms), "value": n.value},
                )  # fmt: skip

    def _recent_events(self, rule: Rule, lo_ms: int, hi_ms: int) -> list[dict[str, Any]]:
        return [
            {"t": notify.iso(e["ts_ms"]), **e}
            for e in self.state.events(rule.owner, lo_ms, hi_ms)
            if e["process_type"] in ("", rule.process_type)
        ]

    def _deliver(self, now_ms: int, wait_s: float = SEND_EVERY_S) -> None:
        """Start sending what is due, at most one notice at a time per receiver, and
        record what finished (within wait_s, or on a later round).

        Sends run on a pool, so a receiver that does not answer holds up only its own
        notices; the outbox rows are written here, on the sender thread."""
        by_id = {s.rule.id: s.rule for s in self._all}
        busy = {dest for _, dest, _, _ in self._inflight.values()}
        for out in self.state.due(now_ms, limit=1000):
            if out.id in self._inflight:
                continue
            rule = by_id.get(out.rule_id)
            if rule is None:  # removed since: nothing to send it with
                self.state.retry(out.id, now_ms, "rule removed", give_up=True)
                continue
            dest = _destination(rule, out.channel)
            if dest in busy:
                continue
            busy.add(dest)
            n = out.notice
            delivery = f"{out.rule_id}:{n.state}:{n.minute_ms}:{out.channel}"
            body = notify.body(
                rule, n.state, n.minute_ms, n.value, out.events, self.base_url, delivery
            )
            job = self._pool.submit(notify.send, out.channel, rule, body, self.smtp, self.nets)
            self._inflight[out.id] = (job, dest, rule, out)
        if self._inflight:
            futures.wait([job for job, _, _, _ in self._inflight.values()], timeout=wait_s)
        for oid, (job, _, rule, out) in list(self._inflight.items()):
            if job.done():
                del self._inflight[oid]
                self._settle(rule, out, job.exception(), self.clock.now_ms())

    def _settle(self, rule: Rule, out: Outgoing, exc: BaseException | None, now_ms: int) -> None:
        n = out.notice
        where = {"app": rule.app, "rule_id": rule.id, "channel": out.channel, "state": n.state}
        if exc is None:
            self.state.sent(out.id, now_ms)
            self.metrics.alert_notices.labels(out.channel, "sent").inc()
            log.info("alert.sent", extra={**where, "minute": notify.iso(n.minute_ms)})
        elif isinstance(exc, (notify.Final4xx, targets.Blocked)):
            self.state.retry(out.id, now_ms, notify.reason(exc), give_up=True)
            self.metrics.alert_notices.labels(out.channel, "refused").inc()
            log.warning("alert.refused", extra={**where, "error": str(exc)})
        else:
            give_up = out.attempts >= len(notify.BACKOFF_S)
            wait_s = notify.BACKOFF_S[min(out.attempts, len(notify.BACKOFF_S) - 1)]
            self.state.retry(out.id, now_ms + wait_s * 1000, notify.reason(exc), give_up=give_up)
            outcome = "given_up" if give_up else "retried"
            self.metrics.alert_notices.labels(out.channel, outcome).inc()
            log.warning(
                "alert.send_failed",
                extra={**where, "error": f"{type(exc).__name__}: {exc}",
                       "attempt": out.attempts + 1, "retry_in_s": None if give_up else wait_s},
            )  # fmt: skip

    def _caught_up(self, got: list[Message]) -> bool:
        """Whether every summary in the log so far has been read, so that closed minutes
        can be judged: after a restart or a rebalance the first polls come back short or
        empty long before that. Asked of the log at most every LAG_CHECK_S."""
        if len(got) >= 5000 or self._consumer.behind:
            self._lag_ok = False
            return False
        now = self.clock.monotonic()
        if now - self._lag_at >= LAG_CHECK_S:
            self._lag_at = now
            lag = self._consumer.lag()
            if lag is not None:
                self.metrics.consumer_lag.labels(ALERTS_GROUP).set(lag)
            self._lag_ok = lag == 0
        return self._lag_ok

    def run(self, stop: threading.Event) -> None:
        assigned: set[TopicPartition] = set()

        def on_assign(parts: dict[TopicPartition, Position] | Any) -> None:
            assigned.update(parts)

        def on_revoke(parts: Any) -> None:
            assigned.difference_update(parts)

        self._consumer.subscribe((*SUMMARY_TOPICS, EVENTS_TOPIC), on_assign, on_revoke)
        # Sending waits on receivers (10 s each at worst): in its own thread, so a dead
        # receiver delays neither reading the log (Kafka evicts a member that stops
        # polling) nor judging; the outbox in the database is what the two share. The
        # sends themselves run on a pool, one receiver at a time each (see _deliver).
        halt = threading.Event()
        sender = threading.Thread(target=self._send_loop, args=(stop, halt), name="alerts-send")
        sender.start()
        try:
            while not stop.is_set():
                got = self._consumer.poll(5000, 0.2)
                self._refresh()
                if got:
                    self._take(got)  # durable before the positions move
                    last: dict[TopicPartition, int] = {}
                    for m in got:
                        last[m.topic, m.partition] = m.offset
                    self._consumer.commit(
                        {tp: Position(o + 1) for tp, o in last.items() if tp in assigned}
                    )
                caught_up = self._caught_up(got)
                if caught_up:
                    self._judge(self.clock.now_ms())
                if self.stage is not None:
                    self.stage.beat(caught_up=caught_up)
        finally:
            halt.set()  # the sender stops with this loop, also when it raised
            sender.join(timeout=2 * notify.TIMEOUT_S)
            self._consumer.close()

    def _send_loop(self, stop: threading.Event, halt: threading.Event) -> None:
        try:
            while not (halt.wait(SEND_EVERY_S) or stop.is_set()):
                try:
                    self._deliver(self.clock.now_ms())
                except Exception:
                    # The outbox keeps the notice: the next round tries again.
                    log.exception("alert.deliver_failed")
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _destination(rule: Rule, channel: str) -> str:
    """The receiver a notice goes to: its URL's host and port, or the mail server."""
    if channel == "email":
        return "smtp"
    url = rule.webhook if channel == "webhook" else rule.slack
    return f"{channel}:{targets.host_port(url or '')}"
