"""Shared fixtures: a Kafka-protocol broker, fresh PostgreSQL databases, each store, and
the scale-out deployment (`tests.support.roles`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from drainpipe.clock import FixedClock
from drainpipe.store import Store
from drainpipe.store.postgres import PostgresStore
from drainpipe.store.sqlite import SqliteStore
from tests.support.kafka_broker import CLIENT_TUNING, TansuBroker
from tests.support.roles import deployment  # noqa: F401 (a fixture, for every test module)

# The tests' webhook receivers listen on 127.0.0.1, which notices may reach only when the
# operator allows it; the processes tests start inherit this. Tests of the policy unset it.
os.environ.setdefault("DRAINPIPE_ALERT_ALLOW_NETS", "127.0.0.0/8")
PG_ADMIN_DSN = os.environ.get(
    "DRAINPIPE_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """$KAFKA_BOOTSTRAP_SERVERS when set, else a Tansu broker started for the session."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if given:
        yield given
        return
    with TansuBroker() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def kafka_client_tuning(kafka_bootstrap: str) -> dict[str, str]:
    """librdkafka settings for the test broker: short group joins on Tansu, none on Kafka."""
    return {} if os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() else dict(CLIENT_TUNING)


@pytest.fixture
def pg_dsn_factory() -> Iterator[Callable[[], str]]:
    """Call it to CREATE a uniquely named database; every one is DROPped at teardown."""
    created: list[str] = []

    def make() -> str:
        name = f"drainpipe_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            # Throwaway data: do not wait for WAL flushes (what is tested is not crash safety).
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(
                    sql.Identifier(name)
                )
            )
        created.append(name)
        return psycopg.conninfo.make_conninfo(PG_ADMIN_DSN, dbname=name)

    yield make

    def drop(name: str) -> None:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(drop, created))


# The date a test's fixed clock shows unless it sets another: 2026-11-18 16:00 UTC.
FIXED_NOW_MS = 1_795_017_600_000


@pytest.fixture
def clock() -> FixedClock:
    """A wall clock fixed at FIXED_NOW_MS, for anything a test hands a date to."""
    return FixedClock(FIXED_NOW_MS)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock) -> Iterator[Store]:
    """Each store in turn, on the `clock` fixture: SQLite, and PostgreSQL on two shards
    (two fresh databases)."""
    made: Store
    if request.param == "sqlite":
        made = SqliteStore(tmp_path / "store.db", clock)
    else:
        factory: Callable[[], str] = request.getfixturevalue("pg_dsn_factory")
        with ThreadPoolExecutor(max_workers=2) as pool:
            made = PostgresStore(list(pool.map(lambda _: factory(), range(2))), clock=clock)
    yield made
    made.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under libfaketime (the shifted-clock run of `test_clock`) skip what needs Kafka:
    librdkafka's timed waits do not return there."""
    if not os.environ.get("FAKETIME"):
        return
    skip = pytest.mark.skip(reason="librdkafka's timed waits hang under libfaketime")
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()) or "kafka" in params:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Figures a test measured and reported (`record_property`), such as failover times,
    at the end of the run's output: reported, never asserted (BENCHMARKS.md has medians)."""
    for report in terminalreporter.getreports("passed"):
        if report.when == "call" and report.user_properties:
            figures = ", ".join(f"{k} {v}" for k, v in report.user_properties)
            terminalreporter.write_line(f"measured: {report.nodeid}: {figures}")
