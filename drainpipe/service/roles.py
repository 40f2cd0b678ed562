"""Scale-out process roles on Kafka and PostgreSQL: ingress, rollup, sink, retry, api,
alerts.

Each role is one process type (see the Procfile); scale a role by running more of it.
Ingress and api are stateless HTTP servers behind a load balancer; rollup, sink and
retry are consumer-group members, so Kafka spreads the partitions over however many
run (32 partitions allow up to 32 of each).
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from drainpipe.alert import targets
from drainpipe.alert.api import AlertsApi
from drainpipe.alert.state import AlertState, postgres_state
from drainpipe.alert.worker import AlertWorker
from drainpipe.config import ROLES, Config, ConfigError
from drainpipe.ingest import native
from drainpipe.ingest.acceptor import RECENT_FRAME_IDS, LocalAcceptor, recent_frames
from drainpipe.ingest.drain import Ingress
from drainpipe.model import FRAMES_TOPIC
from drainpipe.query.api import Api
from drainpipe.rollup.worker import RollupWorker
from drainpipe.service import http
from drainpipe.service.memory import return_freed_memory
from drainpipe.service.signals import until_signalled
from drainpipe.sink.worker import SinkWorker, retry_worker
from drainpipe.store import upkeep
from drainpipe.store.apps import AppRegistry, postgres_registry
from drainpipe.telemetry.health import Health
from drainpipe.telemetry.logs import first_line
from drainpipe.telemetry.metrics import SelfMetrics

if TYPE_CHECKING:
    from drainpipe.bus.kafka import KafkaBus
    from drainpipe.store.postgres import PostgresStore

log = logging.getLogger(__name__)


def kafka_bus(config: Config) -> KafkaBus:
    from drainpipe.bus.kafka import KafkaBus

    assert config.kafka_bootstrap is not None
    return KafkaBus(
        config.kafka_bootstrap,
        partitions=config.kafka_partitions,
        replication=config.kafka_replication,
        extra=dict(config.kafka_config),
        topic_prefix=config.topic_prefix,
        instance_id=config.instance_id,
    )


def postgres_store(config: Config) -> PostgresStore:
    from drainpipe.store.postgres import PostgresStore

    return PostgresStore(list(config.shards))


def registry(config: Config) -> AppRegistry:
    return postgres_registry(config.shards[0])


def alert_state_of(config: Config) -> AlertState:
    """The alerts database of a scale-out process: in PostgreSQL (the first shard, beside
    the app registry) when there is one, so the `api` role serves the rules and history
    the `alerts` role judges; else the data directory's file."""
    return postgres_state(config.shards[0]) if config.shards else AlertState(config.alerts_path)


PREFLIGHT_TIMEOUT_S = 10.0
_CONSUMING = ("drainpipe_bus_", "drainpipe_consumer_", "drainpipe_http_")
# What each role's /metrics shows: the counters it moves, not the others' zeros.
ROLE_METRICS: Final = {
    "ingress": ("drainpipe_drain_", "drainpipe_lines_", "drainpipe_logplex_",
                "drainpipe_series_limited", "drainpipe_http_"),
    "api": ("drainpipe_api_", "drainpipe_http_"),
    "rollup": ("drainpipe_rollup_", *_CONSUMING),
    "sink": ("drainpipe_sink_", "drainpipe_upkeep_", *_CONSUMING),
    "retry": ("drainpipe_sink_", "drainpipe_retry_", *_CONSUMING),
    "alerts": ("drainpipe_alert_", *_CONSUMING),
}  # fmt: skip


def _redacted(dsn: str) -> str:
    """A database URL without its password, for messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _check_port(config: Config) -> None:
    probe = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        probe.bind((config.host, config.port))
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {config.host}:{config.port} ({exc.strerror or exc}): another "
            "process has it, or the address is not this machine's; give --port/$PORT or --host"
        ) from None
    finally:
        probe.close()


def preflight(role: str, config: Config) -> None:
    """What a role needs, checked before it starts: the client libraries, then each
    PostgreSQL shard and the Kafka brokers, answering within PREFLIGHT_TIMEOUT_S. A
    ConfigError says what is missing or unreachable and what to do about it."""
    if role in ("ingress", "api"):  # their port is their job; the others' only shows metrics
        _check_port(config)
    needs_kafka = role != "api"
    needs_pg = role != "rollup" and (role != "alerts" or bool(config.shards))
    wanted = [("confluent_kafka", "Kafka")] if needs_kafka else []
    wanted += [("psycopg", "PostgreSQL")] if needs_pg else []
    for module, what in wanted:
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"`drainpipe {role}` needs the {what} client ({module}), which is not installed:"
                " pip install 'drainpipe[scale]'"
            )
    if needs_pg:
        import psycopg

        for i, dsn in enumerate(config.shards):
            try:
                psycopg.connect(dsn, connect_timeout=int(PREFLIGHT_TIMEOUT_S)).close()
            except psycopg.Error as exc:
                raise ConfigError(
                    f"cannot connect to PostgreSQL shard {i} ({_redacted(dsn)}): "
                    f"{first_line(exc)}; "
                    "check DATABASE_URL or DRAINPIPE_SHARDS and that the server is up"
                ) from None
    if needs_kafka:
        from drainpipe.bus.kafka.bus import bad_setting, reachable

        problem = bad_setting(dict(config.kafka_config))
        if problem:
            raise ConfigError(
                f"DRAINPIPE_KAFKA_CONFIG (or KAFKA_URL's TLS settings): {problem}; see "
                "librdkafka's CONFIGURATION.md for the settings and their values"
            )
        problem = reachable(config.kafka_bootstrap or "", dict(config.kafka_config),
                            PREFLIGHT_TIMEOUT_S)  # fmt: skip
        if problem:
            raise ConfigError(
                f"cannot reach Kafka at {config.kafka_bootstrap}: {problem}; check "
                "KAFKA_BOOTSTRAP_SERVERS (or KAFKA_URL) and that the brokers are up"
            )


def run(role: str, config: Config) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    config.require_scale(role)
    preflight(role, config)
    metrics = SelfMetrics()
    metrics.keep_only(ROLE_METRICS[role])
    log.info(
        "drainpipe.role",
        extra={
            "role": role,
            "kafka": None if role == "api" else config.kafka_bootstrap,
            "compiled_readers": native.scan is not None,
        },
    )
    if role == "api":
        store = postgres_store(config)
        apps = registry(config)
        api = Api(apps, store, retention_days=config.retention_days, metrics=metrics)
        alert_state = alert_state_of(config)
        alerts = AlertsApi(apps, alert_state, nets=targets.nets_of(config))

        def close() -> None:
            store.close()
            alert_state.close()

        asgi = http.app(metrics, api=api, alerts=alerts, access_log=config.access_log)
        http.serve(asgi, close, config, metrics)
        return
    bus = kafka_bus(config)
    health = Health()
    stop_watch = None if role == "ingress" else watch(config, metrics, health)
    try:
        if role == "ingress":
            # Frames stored but not answered before a restart are known when resent.
            # An app's frame ids share one partition: each gives at least 8,192.
            per_partition = max(8192, RECENT_FRAME_IDS // bus.partitions)
            recent = recent_frames(bus.tail(FRAMES_TOPIC, per_partition))
            acceptor = LocalAcceptor(bus.producer(), recent)
            ingress = Ingress(registry(config), acceptor, metrics, config)
            asgi = http.app(metrics, ingress=ingress, access_log=config.access_log)
            http.serve(asgi, lambda: None, config, metrics)
        elif role == "alerts":
            state = alert_state_of(config)
            try:
                alerting = AlertWorker.of(config, bus, state, metrics=metrics)
                alerting.stage = health.stage("alerts")
                alerting.run(until_signalled())
            finally:
                state.close()
        elif role == "rollup":
            RollupWorker(
                bus,
                metrics,
                config.flush_interval_s,
                config.lateness_s,
                stage=health.stage("rollup"),
                max_future_s=config.max_future_s,
            ).run(until_signalled())
        else:
            store = postgres_store(config)
            try:
                if role == "sink":
                    _sink(config, bus, store, metrics, health)
                else:
                    worker = retry_worker(bus, store, metrics)
                    worker.stage = health.stage("retry")
                    worker.run(until_signalled())
            finally:
                store.close()
    finally:
        if stop_watch is not None:
            stop_watch()
        bus.close()


def _sink(
    config: Config, bus: KafkaBus, store: PostgresStore, metrics: SelfMetrics, health: Health
) -> None:
    stop = until_signalled()
    crashed: list[BaseException] = []

    def keep() -> None:
        try:
            upkeep.run(
                store,
                stop,
                config.retention_days,
                config.lateness_s,
                stage=health.stage("upkeep", carries_lines=False),
                registry=registry(config),
                each_pass=return_freed_memory,
                metrics=metrics,
            )
        except BaseException as exc:
            # Fatal for the role: its process manager restarts it whole.
            log.exception("stage.crashed", extra={"stage": "upkeep"})
            crashed.append(exc)
            stop.set()

    keeper = threading.Thread(target=keep, name="upkeep", daemon=True)
    keeper.start()
    SinkWorker(bus, store, metrics, retry=bus.producer(), stage=health.stage("sink")).run(stop)
    keeper.join(timeout=30)
    if crashed:
        raise RuntimeError(f"the sink's upkeep stage crashed: {crashed[0]}")


def watch(config: Config, metrics: SelfMetrics, health: Health) -> Callable[[], None]:
    """Serve /metrics and /healthz of a role that has no HTTP of its own (rollup, sink,
    retry, alerts) on its --host/--port, from a thread; returns what stops it. A port
    that is taken is logged, and the role runs on without it."""

    async def report() -> dict[str, Any]:
        return health.report()

    asgi = http.app(metrics, health=report, access_log=config.access_log)
    server = http.server(asgi, config, metrics)

    def serve() -> None:
        try:
            server.run()
        except SystemExit:  # uvicorn's answer to a port it cannot bind
            log.error(
                "role.watch_unavailable",
                extra={"host": config.host, "port": config.port,
                       "error": "cannot listen there: give this role its own --port"},
            )  # fmt: skip

    thread = threading.Thread(target=serve, name="watch", daemon=True)
    thread.start()
    log.info("http.listening", extra={"host": config.host, "port": config.port, "serves":
                                      "/metrics /healthz"})  # fmt: skip

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=5)

    return stop
