"""`drainpipe up`: wires the log owner (bus, rollup, sink, store) and its HTTP workers.

The owner holds the embedded log's lock and runs the rollup, sink and retention threads
and the log server; HTTP worker processes (one per core by default) parse drain requests
and serve the API. With `--workers 0` everything runs in the owner process.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drainpipe import native, upkeep, workers
from drainpipe.acceptor import LocalAcceptor, recent_frames
from drainpipe.apps import sqlite_registry
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.clock import SYSTEM, Clock
from drainpipe.config import Config
from drainpipe.health import Health, Stage
from drainpipe.logserver import LogServer
from drainpipe.model import FRAMES_TOPIC
from drainpipe.rollup.worker import RollupWorker
from drainpipe.selfmetrics import SelfMetrics
from drainpipe.signals import until_signalled
from drainpipe.sink import SinkWorker
from drainpipe.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from drainpipe.http import ASGIApp

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

    def http_app(self) -> ASGIApp:
        """The drain endpoint and API in this process (`--workers 0`); call it once.

        Imported here: an owner with worker processes serves no HTTP, and uvicorn,
        Starlette and the API would cost it ~5 MB of memory for nothing."""
        from drainpipe import http
        from drainpipe.api import Api
        from drainpipe.ingress import Ingress

        ingress = Ingress(self.registry, self.acceptor, self.metrics, self.config, self.clock)
        api = Api(self.registry, self.store, self.clock)
        return http.app(self.metrics, ingress, api, self.health_report)

    async def health_report(self) -> dict[str, Any]:
        return self.health.report()

    def _spawn(self, name: str, run: Callable[[threading.Event, Stage], None]) -> None:
        """Run a stage in a thread, restarting it with backoff whenever it raises.

        A restarted rollup or sink is built anew and reads from its last commit, the same
        as after a process crash, so a restart is as exact as one."""
        stop = threading.Event()
        stage = self.health.stage(name, carries_lines=name != "upkeep")

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


def serve(config: Config) -> None:
    """Run until SIGTERM/SIGINT: the log owner plus `config.workers` HTTP worker processes."""
    # Requests cross several threads of this process (log server, bus writer); with the
    # rollup and sink busy, the default 5 ms GIL switch interval adds up to ~5 ms per hop.
    sys.setswitchinterval(0.0005)
    # The port first: a server that cannot listen must not start its stages.
    sock = workers.reserve(config.host, config.port) if config.workers else None
    pipeline = Pipeline(config)
    pipeline.start_stages()
    if sock is None:
        log.info(
            "drainpipe.up",
            extra={
                "data_dir": str(config.data_dir),
                "workers": 0,
                "compiled_readers": native.scan is not None,
            },
        )
        from drainpipe import http

        http.serve(pipeline.http_app(), pipeline.stop, config, pipeline.metrics)
        return
    run_dir = Path(tempfile.mkdtemp(prefix="drainpipe-"))  # short path: sun_path is 108 bytes
    logserver = LogServer(pipeline.acceptor, run_dir / "log.sock", pipeline.health.report)
    logserver.start()
    supervisor = workers.Supervisor(config, logserver.path)
    stop = until_signalled()
    supervisor.start()
    log.info(
        "drainpipe.up",
        extra={
            "data_dir": str(config.data_dir),
            "host": config.host,
            "port": config.port,
            "workers": config.workers,
            "compiled_readers": native.scan is not None,
        },
    )
    try:
        while not stop.wait(0.5):
            supervisor.check()
    finally:
        supervisor.stop()  # in-flight requests are answered while the log server still runs
        sock.close()
        logserver.stop()
        pipeline.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        log.info("drainpipe.stopped")
