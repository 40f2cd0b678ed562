"""Upkeep against a database that is away: every task fails, is counted and logged as
one structured line, is tried again on the next pass, and the upkeep goes on."""

from __future__ import annotations

import threading

import pytest

from drainpipe.clock import FixedClock
from drainpipe.store import upkeep
from drainpipe.store.postgres import PostgresStore
from drainpipe.telemetry.metrics import SelfMetrics
from tests.support import drains


def test_upkeep_survives_an_unreachable_database_and_tries_every_pass(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(upkeep, "SETTLE_EVERY_S", 0.05)
    away = f"postgresql://postgres@127.0.0.1:{drains.free_port()}/nothing"  # nobody listens
    store = PostgresStore([away])
    metrics = SelfMetrics()
    stop = threading.Event()
    passes: list[int] = []

    def each_pass() -> None:
        passes.append(1)
        if len(passes) == 3:
            stop.set()

    try:
        upkeep.run(store, stop, 8, 300, clock=FixedClock(1_795_000_000_000),
                   each_pass=each_pass, metrics=metrics)  # fmt: skip
    finally:
        store.close()
    assert len(passes) == 3  # it went on after every failure
    counted = metrics.render().decode()
    for task in ("retention", "settle"):
        assert f'drainpipe_upkeep_failures_total{{task="{task}"}} 3.0' in counted
    failed = [r for r in caplog.records if r.getMessage() == "upkeep.retention_failed"]
    assert len(failed) == 3 and "OperationalError" in failed[0].__dict__["error"]
    assert all(r.exc_info is None for r in failed)  # one line each, no traceback
