"""HTTP worker processes of `drainpipe up`: reserve the port, spawn and supervise them.

Each worker (`http_process`) listens on its own SO_REUSEPORT socket on the one port, so
the kernel spreads connections evenly over them (one shared accept queue leaves most
with whichever worker is least busy when they arrive). A worker that exits is spawned
again with backoff.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from drainpipe.clock import SYSTEM
from drainpipe.config import Config

log = logging.getLogger(__name__)

RESPAWN_BACKOFF_S = (0.1, 0.5, 1.0, 5.0)


def _socket(host: str, reuseport: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def reserve(host: str, port: int, wait_s: float = 5.0) -> socket.socket:
    """Hold host:port for this server's workers: bound with SO_REUSEPORT, not listening.

    A plain bind first proves no other server uses the port (SO_REUSEPORT alone would
    share it with any process of this user); it waits out a killed predecessor's workers.
    """
    deadline = SYSTEM.monotonic() + wait_s
    while True:
        probe = _socket(host, reuseport=False)
        try:
            probe.bind((host, port))
            break
        except OSError as exc:
            if SYSTEM.monotonic() > deadline:
                raise OSError(f"cannot listen on {host}:{port}: {exc}") from exc
            time.sleep(0.1)
        finally:
            probe.close()
    sock = _socket(host, reuseport=True)
    sock.bind((host, port))
    return sock


def listen(host: str, port: int) -> socket.socket:
    """A worker's own listening socket in the port's SO_REUSEPORT group."""
    sock = _socket(host, reuseport=True)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


class Supervisor:
    """Keeps `count` workers running on one socket until stopped."""

    def __init__(self, config: Config, log_socket: Path) -> None:
        count = self.count = config.workers
        self.args = ["--host", config.host, "--port", str(config.port)]
        self.args += ["--log-socket", str(log_socket), "--data-dir", str(config.data_dir)]
        if config.certfile and config.keyfile:
            self.args += ["--certfile", str(config.certfile), "--keyfile", str(config.keyfile)]
        self.procs: list[subprocess.Popen[bytes]] = []
        self._crashes: list[int] = [0] * count

    def _spawn(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "drainpipe.service.http_process", *self.args]
        cmd += ["--primary-pid", str(os.getpid())]
        return subprocess.Popen(cmd)

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.count)]

    def check(self) -> None:
        """Respawn any worker that exited, with backoff if it keeps failing."""
        for i, proc in enumerate(self.procs):
            code = proc.poll()
            if code is None:
                continue
            self._crashes[i] += 1
            delay = RESPAWN_BACKOFF_S[min(self._crashes[i], len(RESPAWN_BACKOFF_S)) - 1]
            log.error("worker.exited", extra={"pid": proc.pid, "code": code, "respawn_in_s": delay})
            time.sleep(delay)
            self.procs[i] = self._spawn()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM: workers answer what is in flight (the log server still runs), then exit."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = SYSTEM.monotonic() + timeout_s
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - SYSTEM.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker.killed_after_timeout", extra={"pid": proc.pid})
                proc.kill()
                proc.wait()
