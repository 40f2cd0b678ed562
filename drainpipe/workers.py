"""HTTP worker processes of `drainpipe up`: spawn, supervise, and the worker's own main.

Workers share the owner's listening socket (the kernel spreads connections), parse and
encode drain requests, hand the records to the owner's log server, and serve the API by
reading the SQLite store directly. A worker dies with its owner (PR_SET_PDEATHSIG), so a
killed owner never leaves workers holding the port.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
RESPAWN_BACKOFF_S = (0.1, 0.5, 1.0, 5.0)


def bind(host: str, port: int, wait_s: float = 10.0) -> socket.socket:
    """A listening socket; waits out a port still held by a killed predecessor's workers."""
    deadline = time.monotonic() + wait_s
    while True:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            if time.monotonic() > deadline:
                raise OSError(f"cannot listen on {host}:{port}: {exc}") from exc
            time.sleep(0.1)
            continue
        sock.listen(2048)
        sock.set_inheritable(True)
        return sock


class Supervisor:
    """Keeps `count` workers running on one socket until stopped."""

    def __init__(self, count: int, sock: socket.socket, log_socket: Path, data_dir: Path) -> None:
        self.count = count
        self.sock = sock
        self.args = ["--log-socket", str(log_socket), "--data-dir", str(data_dir)]
        self.procs: list[subprocess.Popen[bytes]] = []
        self._crashes: list[int] = [0] * count

    def _spawn(self) -> subprocess.Popen[bytes]:
        fd = self.sock.fileno()
        cmd = [sys.executable, "-m", "drainpipe.workers", "--fd", str(fd), *self.args]
        cmd += ["--owner-pid", str(os.getpid())]
        return subprocess.Popen(cmd, pass_fds=[fd])

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
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker.killed_after_timeout", extra={"pid": proc.pid})
                proc.kill()
                proc.wait()


def _die_with_parent(owner_pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != owner_pid:  # the owner died before prctl took effect
        os._exit(1)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="drainpipe-worker")
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--log-socket", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--owner-pid", type=int, required=True)
    args = p.parse_args(argv)
    _die_with_parent(args.owner_pid)

    from drainpipe import http, logs
    from drainpipe.api import Api
    from drainpipe.apps import sqlite_registry
    from drainpipe.config import Config
    from drainpipe.ingress import Ingress
    from drainpipe.logserver import RemoteAcceptor
    from drainpipe.selfmetrics import SelfMetrics
    from drainpipe.store.sqlite import SqliteStore

    logs.setup(os.environ.get("DRAINPIPE_LOG_LEVEL", "INFO"))
    config = Config.from_env(os.environ, data_dir=args.data_dir)
    sock = socket.socket(fileno=args.fd)
    metrics = SelfMetrics()
    registry = sqlite_registry(config.apps_path)
    store = SqliteStore(config.store_path)
    ingress = Ingress(registry, RemoteAcceptor(args.log_socket), metrics, config)

    def close() -> None:
        store.close()
        registry.close()

    http.serve(http.app(metrics, ingress, Api(registry, store)), close, sockets=[sock])


if __name__ == "__main__":
    main()
