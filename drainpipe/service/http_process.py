"""One HTTP worker process of `drainpipe up`: its main, started by `http_pool`.

A worker parses and encodes drain requests, hands the records to the primary's log
server (`ingest.handoff`), and serves the API by reading the SQLite store directly. It
dies with its primary (PR_SET_PDEATHSIG), so a killed primary never leaves workers
holding the port.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from drainpipe.config import Config
from drainpipe.service.http_pool import listen

PR_SET_PDEATHSIG = 1


def _die_with_parent(primary_pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != primary_pid:  # the primary died before prctl took effect
        os._exit(1)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="drainpipe-worker")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log-socket", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--primary-pid", type=int, required=True)
    p.add_argument("--certfile", type=Path)
    p.add_argument("--keyfile", type=Path)
    args = p.parse_args(argv)
    _die_with_parent(args.primary_pid)

    from drainpipe.alert import targets
    from drainpipe.alert.api import AlertsApi
    from drainpipe.alert.state import AlertState
    from drainpipe.ingest.drain import Ingress
    from drainpipe.ingest.handoff import RemoteAcceptor
    from drainpipe.query.api import Api
    from drainpipe.service import http
    from drainpipe.store.apps import sqlite_registry
    from drainpipe.store.sqlite import SqliteStore
    from drainpipe.telemetry import logs
    from drainpipe.telemetry.metrics import SelfMetrics

    logs.setup(os.environ.get("DRAINPIPE_LOG_LEVEL", "INFO"))
    config = Config.from_env(
        os.environ,
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        certfile=args.certfile,
        keyfile=args.keyfile,
    )
    sock = listen(args.host, args.port)
    metrics = SelfMetrics()
    registry = sqlite_registry(config.apps_path)
    store = SqliteStore(config.store_path)
    primary = RemoteAcceptor(args.log_socket)
    ingress = Ingress(registry, primary, metrics, config)

    alert_state = AlertState(config.alerts_path)

    def close() -> None:
        store.close()
        registry.close()
        alert_state.close()

    api = Api(registry, store, retention_days=config.retention_days)
    alerts = AlertsApi(registry, alert_state, nets=targets.nets_of(config))
    asgi = http.app(metrics, ingress, api, primary.health, alerts, config.access_log)
    http.serve(asgi, close, config, metrics, [sock])


if __name__ == "__main__":
    main()
