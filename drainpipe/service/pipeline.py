"""The pipeline of `drainpipe up`: every stage on the embedded bus and store, supervised.

The primary process holds the embedded log's lock and runs the rollup, sink, upkeep
and alerts as threads, each restarted with backoff when it dies and reporting to `Health`; ingress
and the API are served by HTTP worker processes (see `up`), or in this process with
`--workers 0`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drainpipe.alert.state import AlertState
from drainpipe.alert.worker import AlertWorker
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.clock import SYSTEM, Clock
from drainpipe.config import Config
from drainpipe.ingest.acceptor import LocalAcceptor, recent_frames
from drainpipe.model import FRAMES_TOPIC
from drainpipe.rollup.worker import RollupWorker
from drainpipe.service.memory import return_freed_memory
from drainpipe.sink.worker import SinkWorker
from drainpipe.store import upkeep
from drainpipe.store.apps import sqlite_registry
from drainpipe.store.sqlite import SqliteStore
from drainpipe.telemetry.health import Health, Stage
from drainpipe.telemetry.metrics import SelfMetrics

if TYPE_CHECKING:
    from starlette.types import ASGIApp

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
HEALTHY_RUN_S = 60.0  # a stage that ran this long before it crashed starts its backoff over


@dataclass
class Pipeline:
    """Everything `drainpipe up` runs, started and stopped in dependency order."""

    config: Config
    metrics: SelfMetrics = field(default_factory=SelfMetrics)
    clock: Clock = SYSTEM  # the one every stage of the pipeline reads

    def __post_init__(self) -> None:
        c = self.config
        self.bus = EmbeddedBus(c.bus_dir, c.partitions, self.clock)
        self.store = SqliteStore(c.store_path, self.clock)
        self.registry = sqlite_registry(c.apps_path, self.clock)
        self.acceptor = LocalAcceptor(
            self.bus.producer(), recent_frames(self.bus.tail(FRAMES_TOPIC))
        )
        self.health = Health(self.clock)
        self.acceptor.gate = self.health.problem
        self.rollup = self._new_rollup()
        self.sink = self._new_sink()
        self.alert_state = AlertState(c.alerts_path)
        # One stop event per stage, set in data-flow order (see `stop`).
        self._stages: list[tuple[threading.Event, threading.Thread]] = []

    def _new_rollup(self) -> RollupWorker:
        c = self.config
        return RollupWorker(
            self.bus,
            self.metrics,
            c.flush_interval_s,
            c.lateness_s,
            self.clock,
            max_future_s=c.max_future_s,
        )

    def _new_sink(self) -> SinkWorker:
        return SinkWorker(self.bus, self.store, self.metrics, clock=self.clock)

    def new_alerts(self) -> AlertWorker:
        return AlertWorker.of(self.config, self.bus, self.alert_state, self.clock, self.metrics)

    def http_app(self) -> ASGIApp:
        """The drain endpoint and API in this process (`--workers 0`); call it once.

        Imported here: a primary with worker processes serves no HTTP, and uvicorn,
        Starlette and the API would cost it memory for nothing."""
        from drainpipe.ingest.drain import Ingress
        from drainpipe.query.api import Api
        from drainpipe.service import http

        ingress = Ingress(self.registry, self.acceptor, self.metrics, self.config, self.clock)
        from drainpipe.alert import targets
        from drainpipe.alert.api import AlertsApi

        api = Api(self.registry, self.store, self.clock, self.config.retention_days)
        nets = targets.nets_of(self.config)
        alerts = AlertsApi(self.registry, self.alert_state, self.clock, nets)
        return http.app(
            self.metrics, ingress, api, self.health_report, alerts, self.config.access_log
        )

    async def health_report(self) -> dict[str, Any]:
        return self.health.report()

    def _spawn(self, name: str, run: Callable[[threading.Event, Stage], None]) -> None:
        """Run a stage in a thread, restarting it with backoff whenever it raises.

        A restarted rollup or sink is built anew and reads from its last commit, the same
        as after a process crash, so a restart is as exact as one."""
        stop = threading.Event()
        stage = self.health.stage(name, carries_lines=name not in ("upkeep", "alerts"))

        def supervise() -> None:
            crashes = 0
            while True:
                started = self.clock.monotonic()
                try:
                    run(stop, stage)
                    stage.state = "stopped"
                    return
                except Exception as exc:
                    if self.clock.monotonic() - started > HEALTHY_RUN_S:
                        crashes = 0  # it had recovered: start the backoff over
                    delay = RESTART_BACKOFF_S[min(crashes, len(RESTART_BACKOFF_S) - 1)]
                    crashes += 1
                    stage.crashed(exc)
                    self.metrics.stage_restarts.labels(name).inc()
                    log.exception("stage.crashed", extra={"stage": name, "restart_in_s": delay})
                if stop.wait(delay):
                    stage.state = "stopped"
                    return
                stage.restarted()
                log.info("stage.restarted", extra={"stage": name, "restarts": stage.restarts})

        t = threading.Thread(target=supervise, name=name, daemon=True)
        t.start()
        self._stages.append((stop, t))

    def start_stages(self) -> None:
        self._spawn("rollup", self._rollup)
        self._spawn("sink", self._sink)
        self._spawn("upkeep", self._upkeep)
        self._spawn("alerts", self._alerts)

    def _rollup(self, stop: threading.Event, stage: Stage) -> None:
        if stage.restarts:
            self.rollup = self._new_rollup()
        self.rollup.stage = stage
        self.rollup.run(stop)

    def _sink(self, stop: threading.Event, stage: Stage) -> None:
        if stage.restarts:
            self.sink = self._new_sink()
        self.sink.stage = stage
        self.sink.run(stop)

    def _alerts(self, stop: threading.Event, stage: Stage) -> None:
        worker = self.new_alerts()  # built anew on each start: it resumes from its commit
        worker.stage = stage
        worker.run(stop)

    def _upkeep(self, stop: threading.Event, stage: Stage) -> None:
        c = self.config
        upkeep.run(
            self.store,
            stop,
            c.retention_days,
            c.lateness_s,
            lambda: self.bus.enforce_retention(c.raw_retention_hours * 3600.0),
            self.clock,
            stage,
            self.registry,
            return_freed_memory,
            self.metrics,
        )

    def stop(self) -> None:
        """Stop stages in data-flow order: the rollup flushes its last summaries, the sink
        stores everything up to them, then the bus and store close."""
        for stop, t in self._stages:
            stop.set()
            t.join(timeout=30)
        self.bus.close()
        self.store.close()
        self.registry.close()
        self.alert_state.close()
