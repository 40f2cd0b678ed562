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
from typing import TYPE_CHECKING

from drainpipe import native, upkeep, workers
from drainpipe.acceptor import LocalAcceptor
from drainpipe.apps import sqlite_registry
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.clock import SYSTEM, Clock
from drainpipe.config import Config
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


def recent_frames(bus: EmbeddedBus) -> list[tuple[str, str]]:
    """(owner, Logplex-Frame-Id) of requests accepted in the log's tail."""
    out = []
    for m in bus.tail(FRAMES_TOPIC):
        owner = m.key.decode().partition("|")[0]
        out.append((owner, m.value.decode()))
    return out


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
        self.acceptor = LocalAcceptor(self.bus.producer(), recent_frames(self.bus))
        self.rollup = RollupWorker(
            self.bus, self.metrics, c.flush_interval_s, c.lateness_s, self.clock
        )
        self.sink = SinkWorker(self.bus, self.store, self.metrics, clock=self.clock)
        # One stop event per stage, set in data-flow order (see `stop`).
        self._stages: list[tuple[threading.Event, threading.Thread]] = []

    def http_app(self) -> ASGIApp:
        """The drain endpoint and API in this process (`--workers 0`); call it once.

        Imported here: an owner with worker processes serves no HTTP, and uvicorn,
        Starlette and the API would cost it ~5 MB of memory for nothing."""
        from drainpipe import http
        from drainpipe.api import Api
        from drainpipe.ingress import Ingress

        ingress = Ingress(self.registry, self.acceptor, self.metrics, self.config, self.clock)
        return http.app(self.metrics, ingress, Api(self.registry, self.store, self.clock))

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        stop = threading.Event()

        def run() -> None:
            try:
                target(stop)
            except Exception:
                log.exception("stage.crashed", extra={"stage": name})
                raise

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self._stages.append((stop, t))

    def start_stages(self) -> None:
        self._spawn("rollup", self.rollup.run)
        self._spawn("sink", self.sink.run)
        self._spawn("upkeep", self._upkeep)

    def _upkeep(self, stop: threading.Event) -> None:
        c = self.config
        upkeep.run(
            self.store,
            stop,
            c.retention_days,
            c.lateness_s,
            lambda: self.bus.enforce_retention(c.raw_retention_hours * 3600.0),
            self.clock,
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

        http.serve(pipeline.http_app(), pipeline.stop, config.host, config.port)
        return
    run_dir = Path(tempfile.mkdtemp(prefix="drainpipe-"))  # short path: sun_path is 108 bytes
    logserver = LogServer(pipeline.acceptor, run_dir / "log.sock")
    logserver.start()
    supervisor = workers.Supervisor(
        config.workers, config.host, config.port, logserver.path, config.data_dir
    )
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
