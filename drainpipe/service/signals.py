"""A stop event set by SIGTERM or SIGINT, for processes that run until told to stop."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)


def until_signalled() -> threading.Event:
    """Install SIGTERM/SIGINT handlers (main thread only) that log and set the event."""
    stop = threading.Event()

    def handle(signum: int, _: object) -> None:
        log.info("drainpipe.stopping", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
