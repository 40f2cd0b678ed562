"""The all-in-one process: wires bus, ingress, rollup, sink, store and API together."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from drainpipe.api import Api
from drainpipe.apps import AppRegistry
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.config import Config
from drainpipe.ingress import Ingress
from drainpipe.model import FRAMES_TOPIC
from drainpipe.rollup.worker import RollupWorker
from drainpipe.selfmetrics import SelfMetrics
from drainpipe.sink import SinkWorker
from drainpipe.store import DAY_MS
from drainpipe.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0


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

    def __post_init__(self) -> None:
        c = self.config
        self.bus = EmbeddedBus(c.bus_dir, c.partitions)
        self.store = SqliteStore(c.store_path)
        self.registry = AppRegistry(c.apps_path)
        self.ingress = Ingress(
            self.registry, self.bus.producer(), self.metrics, c, recent_frames(self.bus)
        )
        self.api = Api(self.registry, self.store)
        self.rollup = RollupWorker(self.bus, self.metrics, c.flush_interval_s, c.lateness_s)
        self.sink = SinkWorker(self.bus, self.store, self.metrics)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def http_app(self) -> Starlette:
        async def own_metrics(_: Request) -> Response:
            return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

        async def health(_: Request) -> Response:
            return PlainTextResponse("ok\n")

        return Starlette(
            routes=[
                Route("/logs", self.ingress.handle, methods=["POST"]),
                Route("/api/v1/apps/{name}/metrics/{metric}", self.api.metrics, methods=["GET"]),
                Route("/api/v1/apps/{name}/events", self.api.events, methods=["GET"]),
                Route("/metrics", own_metrics, methods=["GET"]),
                Route("/healthz", health, methods=["GET"]),
            ]
        )

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        def run() -> None:
            try:
                target(self._stop)
            except Exception:
                log.exception("worker.crashed", extra={"worker": name})
                raise

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def start_workers(self) -> None:
        self._spawn("rollup", self.rollup.run)
        self._spawn("sink", self.sink.run)
        self._spawn("retention", self._retention)

    def _retention(self, stop: threading.Event) -> None:
        while True:
            cutoff = int(time.time() * 1000) - self.config.retention_days * DAY_MS
            dropped = self.store.drop_before(cutoff)
            if dropped:
                log.info("store.retention_dropped", extra={"tables": dropped})
            if stop.wait(RETENTION_EVERY_S):
                return

    def stop(self) -> None:
        """Flush the rollup and sink, then close the bus: in-flight data is committed."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self.bus.close()
        self.store.close()


def serve(config: Config) -> None:
    pipeline = Pipeline(config)
    pipeline.start_workers()
    server = uvicorn.Server(
        uvicorn.Config(
            pipeline.http_app(),
            host=config.host,
            port=config.port,
            loop="uvloop",
            http="httptools",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    )
    log.info(
        "drainpipe.up",
        extra={"host": config.host, "port": config.port, "data_dir": str(config.data_dir)},
    )
    # uvicorn restores the handlers it found and then re-raises the signal it caught;
    # with these in place that re-raise is harmless and the final flush below runs.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(
            sig, lambda signum, _: log.info("drainpipe.stopping", extra={"signal": signum})
        )
    try:
        server.run()  # returns after SIGINT/SIGTERM, once in-flight requests are answered
    finally:
        pipeline.stop()
        log.info("drainpipe.stopped")
