"""The scale-out deployment for tests: roles as processes on a Kafka-protocol broker and
two PostgreSQL shards (the `deployment` fixture, registered in conftest)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import drains, pg_cluster


def url_of(conninfo: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{psycopg.conninfo.conninfo_to_dict(conninfo)['dbname']}"


class Roles:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, role: str, *args: str, name: str | None = None) -> None:
        """Start `drainpipe role args`, known as `name` (the role, by default)."""
        name = name or role
        with open(self.tmp / f"{name}.log", "ab") as log:  # the child keeps its own fd
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "drainpipe.cli", role, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def create_app(self, name: str) -> dict[str, str]:
        """`drainpipe apps create NAME --postgres`: the app's credentials."""
        out = subprocess.run(
            [sys.executable, "-m", "drainpipe.cli", "apps", "create", name, "--postgres"],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout))

    def start_all(self, ingress_port: int, api_port: int) -> tuple[drains.Server, drains.Server]:
        """Every role, once ingress and api answer; (ingress, api)."""
        self.start("ingress", "--port", str(ingress_port))
        self.start("api", "--port", str(api_port))
        for role in ("rollup", "sink", "retry"):
            self.start(role)
        servers = []
        for role, port in (("ingress", ingress_port), ("api", api_port)):
            server = drains.Server(f"http://127.0.0.1:{port}", self.tmp, self.procs[role], self.tmp)
            wait_http(server.url, self)
            servers.append(server)
        return servers[0], servers[1]

    def log(self, role: str) -> str:
        return (self.tmp / f"{role}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        stuck = []
        for role, p in self.procs.items():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                stuck.append(f"{role} did not stop on SIGTERM: {self.log(role)[-2000:]}")
        if stuck:
            pytest.fail("\n".join(stuck))


def post_until_accepted(ingress: drains.Server, secret: str, lines: list[str]) -> int:
    """POST lines as Logplex does while a role starts (it retries a 503); the last answer."""
    code = 0
    for _ in range(100):
        code = ingress.post(secret, drains.body(lines), len(lines))
        if code == 204:
            break
        time.sleep(0.1)
    return code


def wait_http(url: str, roles: Roles, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} not up: " + " | ".join(roles.log(r)[-800:] for r in roles.procs))


Deployment = tuple[Roles, pg_cluster.Cluster, list[str], int, int]  # ..., ingress and API ports


@pytest.fixture
def deployment(
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_client_tuning: dict[str, str],
    pg_dsn_factory: Callable[[], str],
) -> Iterator[Deployment]:
    shard_a = url_of(pg_dsn_factory())
    cluster = pg_cluster.create()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DRAINPIPE_KAFKA_CONFIG": ",".join(f"{k}={v}" for k, v in kafka_client_tuning.items()),
        "DRAINPIPE_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}.",
        "DRAINPIPE_KAFKA_PARTITIONS": "4",
        "DRAINPIPE_KAFKA_REPLICATION": "1",
        "DRAINPIPE_FLUSH_INTERVAL_S": "0.2",
        "DRAINPIPE_SHARDS": f"{shard_a} {cluster.dsn}",
        "PYTHONUNBUFFERED": "1",
    }
    roles = Roles(tmp_path, env)
    try:
        yield roles, cluster, [shard_a, cluster.dsn], drains.free_port(), drains.free_port()
    finally:
        roles.stop_all()
        cluster.destroy()
