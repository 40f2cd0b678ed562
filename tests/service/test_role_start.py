"""A scale-out role that cannot start says why in one structured line and exits 2:
Kafka unreachable, PostgreSQL unreachable, or the `[scale]` extra missing; and the
`api` role starts without Kafka, which it does not use."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drainpipe.config import Config, ConfigError
from drainpipe.service import roles
from tests.support import drains


def role(name: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_URL", "DATABASE_URL")}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "drainpipe.cli", name, *args],
        env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def one_line(out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    line: dict[str, Any] = json.loads(lines[0])
    assert line["event"] == "role.start_failed"
    return line


def test_kafka_unreachable_is_one_line_that_says_what_to_check() -> None:
    nobody = f"127.0.0.1:{drains.free_port()}"
    line = one_line(role("rollup", {"KAFKA_BOOTSTRAP_SERVERS": nobody}))
    assert line["role"] == "rollup"
    assert f"cannot reach Kafka at {nobody}" in line["error"]
    assert "KAFKA_BOOTSTRAP_SERVERS" in line["error"]


def test_postgres_unreachable_is_one_line_without_the_password() -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{drains.free_port()}/metrics"
    line = one_line(role("api", {"DATABASE_URL": url}, "--port", str(drains.free_port())))
    assert "cannot connect to PostgreSQL shard 0" in line["error"]
    assert "DATABASE_URL" in line["error"] and "hunter2" not in line["error"]


def test_a_missing_scale_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "confluent_kafka" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    config = Config(kafka_bootstrap="127.0.0.1:9092", shards=("postgresql://x/y",))
    with pytest.raises(ConfigError, match=r"pip install 'drainpipe\[scale\]'"):
        roles.preflight("sink", config)


def test_the_api_role_starts_without_kafka(
    pg_dsn_factory: Callable[[], str], tmp_path: Path
) -> None:
    from tests.support.roles import url_of

    port = drains.free_port()
    env = {**os.environ, "DATABASE_URL": url_of(pg_dsn_factory()), "PYTHONUNBUFFERED": "1"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    log = tmp_path / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drainpipe.cli", "api", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the api role did not answer"
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_taken_port_is_one_line_too() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(role("api", {"DATABASE_URL": "postgresql://x/y"}, "--port", str(port)))
    assert f"cannot listen on 127.0.0.1:{port}" in line["error"] and "--port" in line["error"]


@pytest.mark.parametrize(
    ("env", "args", "says"),
    [
        ({}, ("--instance-id", "bad id"), "--instance-id 'bad id' is not a usable instance id"),
        ({"DRAINPIPE_KAFKA_PARTITIONS": "abc"}, (), "DRAINPIPE_KAFKA_PARTITIONS='abc'"),
        (  # a value librdkafka refuses, in a setting only consumers take
            {"DRAINPIPE_KAFKA_CONFIG": "session.timeout.ms=abc"},
            (),
            "DRAINPIPE_KAFKA_CONFIG (or KAFKA_URL's TLS settings): Invalid value for "
            'configuration property "session.timeout.ms"',
        ),
        ({"DRAINPIPE_KAFKA_CONFIG": "no.such.key=1"}, (), 'property: "no.such.key"'),
    ],
)
def test_a_bad_setting_is_one_line_before_anything_starts(
    env: dict[str, str], args: tuple[str, ...], says: str
) -> None:
    nobody = f"127.0.0.1:{drains.free_port()}"  # never asked: the settings fail first
    line = one_line(role("rollup", {"KAFKA_BOOTSTRAP_SERVERS": nobody, **env}, *args))
    assert says in line["error"], line
