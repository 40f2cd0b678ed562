"""`drainpipe up`: the primary process's run, from taking the port to a clean stop.

The primary holds the pipeline (`pipeline`); with `--workers` above 0 it also runs the
socket the HTTP worker processes hand records through and supervises them (`http_pool`).
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path

from drainpipe.config import Config
from drainpipe.ingest import native
from drainpipe.ingest.handoff import LogServer
from drainpipe.service import http_pool
from drainpipe.service.pipeline import Pipeline
from drainpipe.service.signals import until_signalled

log = logging.getLogger(__name__)


def run(config: Config) -> None:
    """Run until SIGTERM/SIGINT: the primary plus `config.workers` HTTP worker processes."""
    # Requests cross several threads of this process (log server, bus writer); with the
    # rollup and sink busy, the default 5 ms GIL switch interval adds up to ~5 ms per hop.
    sys.setswitchinterval(0.0005)
    # The port first: a server that cannot listen must not start its stages.
    sock = http_pool.reserve(config.host, config.port) if config.workers else None
    pipeline = Pipeline(config)
    pipeline.start_stages()
    url = config.base_url + "/"  # the dashboard
    if sock is None:
        log.info(
            "drainpipe.up",
            extra={
                "data_dir": str(config.data_dir),
                "workers": 0,
                "compiled_readers": native.scan is not None,
                "dashboard": url,
            },
        )
        _announce(url)
        from drainpipe.service import http

        http.serve(pipeline.http_app(), pipeline.stop, config, pipeline.metrics)
        return
    run_dir = Path(tempfile.mkdtemp(prefix="drainpipe-"))  # short path: sun_path is 108 bytes
    logserver = LogServer(pipeline.acceptor, run_dir / "log.sock", pipeline.health.report)
    logserver.start()
    supervisor = http_pool.Supervisor(config, logserver.path)
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
            "dashboard": url,
        },
    )
    _announce(url)
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


def _announce(url: str) -> None:
    """The one line for the person who ran `drainpipe up` (logs go to stderr as JSON)."""
    print(f"drainpipe: dashboard at {url} (sign in with an app's API token)", flush=True)
