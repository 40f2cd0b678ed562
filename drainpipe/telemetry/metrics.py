"""drainpipe's own counters, one per drop path, exposed in Prometheus text format.

`drainpipe up` runs several processes; with PROMETHEUS_MULTIPROC_DIR set (before
prometheus_client is imported) every process writes its values to files there and any
of them renders the sum, through prometheus_client's multiprocess collector.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LAG_EVERY_S = 5.0  # how often workers sample their lag gauges (a round trip on Kafka)


class SelfMetrics:
    """A private registry, so several pipelines (tests, roles) can live in one process."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "drainpipe_drain_requests",
            "Drain requests answered, by HTTP status",
            ["status"],
            registry=r,
        )
        self.rejected = Counter(
            "drainpipe_drain_batches_rejected",
            "Drain requests refused whole, by reason",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "drainpipe_drain_duplicate_frames",
            "Drain requests retried with an accepted Logplex-Frame-Id, not counted twice",
            registry=r,
        )
        self.lines = Counter(
            "drainpipe_lines_parsed", "Log lines used, by kind", ["kind"], registry=r
        )
        self.skipped = Counter(
            "drainpipe_lines_skipped", "Log lines skipped, by reason", ["reason"], registry=r
        )
        self.upstream_dropped = Counter(
            "drainpipe_logplex_dropped_messages",
            "Messages Logplex reported dropping before they reached drainpipe (L10)",
            registry=r,
        )
        self.series_limited = Counter(
            "drainpipe_series_limited",
            "Measurements dropped because their app has as many process types or custom "
            "metric names as it may (see DRAINPIPE_MAX_PROCESS_TYPES, _MAX_CUSTOM_NAMES)",
            ["kind"],
            registry=r,
        )
        self.late_dropped = Counter(
            "drainpipe_rollup_late_dropped",
            "Measurements dropped because their minute had closed (more than the lateness behind)",
            ["family"],
            registry=r,
        )
        self.late_dropped_by_app = Counter(
            "drainpipe_rollup_late_dropped_by_app",
            "Measurements dropped as late, by app id (its key in every record)",
            ["app_id"],
            registry=r,
        )
        self.bad_messages = Counter(
            "drainpipe_bus_bad_messages",
            "Bus messages that could not be decoded",
            ["topic"],
            registry=r,
        )
        self.duplicate_batches = Counter(
            "drainpipe_rollup_duplicate_batches",
            "Raw batches of a retried drain frame seen a second time (accepted by two "
            "ingress processes) and not counted again",
            registry=r,
        )
        self.summaries_flushed = Counter(
            "drainpipe_rollup_summaries_flushed",
            "Summary versions produced by the rollup",
            registry=r,
        )
        self.summaries_written = Counter(
            "drainpipe_sink_summaries_written", "Summary versions written to the store", registry=r
        )
        self.events_written = Counter(
            "drainpipe_sink_events_written", "Platform events written to the store", registry=r
        )
        self.sink_failures = Counter(
            "drainpipe_sink_write_failures", "Store writes that failed and were retried", registry=r
        )
        self.writes_recovered = Counter(
            "drainpipe_sink_writes_recovered",
            "Store writes that landed after failing at least once, by consumer group "
            "(sink, or retry for batches parked in RETRY topics)",
            ["group"],
            registry=r,
        )
        self.retry_stored = Counter(
            "drainpipe_retry_messages_stored",
            "Messages parked in RETRY topics that the retry role has now stored",
            registry=r,
        )
        self.upkeep_failures = Counter(
            "drainpipe_upkeep_failures",
            "Upkeep tasks that failed and will be tried again, by task (retention, settle, purge)",
            ["task"],
            registry=r,
        )
        self.api_partial = Counter(
            "drainpipe_api_partial_answers",
            "API answers given without a store shard that did not answer (partial, or a "
            "503 when everything asked for is on it), by shard",
            ["shard"],
            registry=r,
        )
        self.connections_refused = Counter(
            "drainpipe_http_connections_refused",
            "HTTP connections refused or closed by a limit (slow headers or body, oversized "
            "headers, the connection cap), by reason",
            ["reason"],
            registry=r,
        )
        self.stage_restarts = Counter(
            "drainpipe_stage_restarts",
            "Pipeline stages restarted after they crashed, by stage",
            ["stage"],
            registry=r,
        )
        self.alert_notices = Counter(
            "drainpipe_alert_notices",
            "Alert notices by channel and outcome: sent, retried (a try failed and another "
            "is due), given_up (every try failed) or refused (a 4xx: not tried again)",
            ["channel", "outcome"],
            registry=r,
        )
        self.open_windows = Gauge(
            "drainpipe_rollup_open_windows",
            "Rollup windows held in memory",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.consumer_lag = Gauge(
            "drainpipe_consumer_lag_messages",
            "Messages in this member's partitions it has not read yet (from its read "
            "position, not its commit: the rollup commits its oldest open minute, so "
            "Kafka's own lag tools show it minutes behind by design), by consumer group",
            ["group"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.consumer_partitions = Gauge(
            "drainpipe_consumer_partitions",
            "Partitions assigned to this member, by consumer group: 0 for long is a "
            "rebalance that does not finish (or more members than partitions)",
            ["group"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.group_partitions = Gauge(
            "drainpipe_consumer_group_partitions",
            "Partitions of the topics this member's consumer group reads: while the sum "
            "of drainpipe_consumer_partitions over the members is lower, some are unread",
            ["group"],
            registry=r,
            multiprocess_mode="max",
        )
        self.event_time_lag = Gauge(
            "drainpipe_rollup_event_time_lag_seconds",
            "How far the newest minute the rollup has read is behind the clock: what "
            "matters for freshness (a quiet pipeline shows its idle time here)",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.http_seconds = Histogram(
            "drainpipe_http_request_seconds",
            "Time to answer an HTTP request of the API, dashboard or health, by route "
            "(the drain endpoint has counters of its own)",
            ["route"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.http_responses = Counter(
            "drainpipe_http_responses",
            "HTTP answers of the API, dashboard and health, by route and status class",
            ["route", "status"],
            registry=r,
        )

    def sample_lag(self, group: str, lag: Callable[[], int | None]) -> None:
        """Set a consumer group's lag gauge from `lag` (a Consumer's); a failed sample
        leaves the last value (the bus logs its own errors)."""
        try:
            found = lag()
        except Exception:
            return
        if found is not None:
            self.consumer_lag.labels(group).set(found)

    def keep_only(self, prefixes: tuple[str, ...]) -> None:
        """Drop the metrics this process never moves (a role's /metrics shows what the
        role does, not always-zero counters of the others)."""
        for metric in list(vars(self).values()):
            if isinstance(metric, (Counter, Gauge, Histogram)) and not any(
                d.name.startswith(prefixes) for d in metric.describe()
            ):
                self.registry.unregister(metric)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            every_process = CollectorRegistry()
            multiprocess.MultiProcessCollector(every_process)  # type: ignore[no-untyped-call]
            return generate_latest(every_process)
        return generate_latest(self.registry)
