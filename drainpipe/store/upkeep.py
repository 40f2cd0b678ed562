"""Store upkeep on a schedule: settle hour tiers every half minute, drop old days hourly.

Runs beside a sink (a thread of `drainpipe up`'s primary, and of every `drainpipe sink`
role process). Several sinks may run it at once against one PostgreSQL store: settling
takes a per-shard advisory lock and retention is idempotent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from drainpipe.clock import SYSTEM, Clock
from drainpipe.model import MINUTE_MS
from drainpipe.store import DAY_MS, Store
from drainpipe.store.apps import AppRegistry
from drainpipe.telemetry.health import Stage
from drainpipe.telemetry.metrics import SelfMetrics

log = logging.getLogger(__name__)

SETTLE_EVERY_S: Final = 30.0
PURGE_FOR_MS: Final = 3_600_000  # a deleted app's data is purged this long
RETENTION_EVERY_S: Final = 3600.0


def run(
    store: Store,
    stop: threading.Event,
    retention_days: int,
    lateness_s: int,
    also_hourly: Callable[[], object] | None = None,
    clock: Clock = SYSTEM,
    stage: Stage | None = None,
    registry: AppRegistry | None = None,
    each_pass: Callable[[], object] | None = None,
    metrics: SelfMetrics | None = None,
) -> None:
    """Settle and retain until stop is set; `also_hourly` runs with retention and
    `each_pass` after every pass; with a registry, deleted apps' data is purged on every
    pass. `clock` must be the store's: settling compares its now with the store's write
    stamps."""
    # Settle once the rollup can no longer change an hour, plus two minutes for the
    # flush and the sink.
    after_ms = lateness_s * 1000 + 2 * MINUTE_MS
    next_retention = float("-inf")
    while True:
        if clock.monotonic() >= next_retention:
            try:
                dropped = store.drop_before(clock.now_ms() - retention_days * DAY_MS)
                if dropped:
                    log.info("store.retention_dropped", extra={"tables": dropped})
                if also_hourly is not None:
                    also_hourly()
                next_retention = clock.monotonic() + RETENTION_EVERY_S
            except Exception as exc:
                # A database that is away now is tried again next pass, not in an hour,
                # and never ends the upkeep (settling and retention would stop for good).
                _failed("retention", exc, metrics)
        if registry is not None:
            try:
                purge_deleted(registry, store, clock.now_ms())
            except Exception as exc:
                # Tried again next pass; a locked database must not stop the upkeep.
                _failed("purge", exc, metrics)
        try:
            t0 = clock.monotonic()
            settled = store.settle(clock.now_ms(), after_ms)
            if settled:
                log.info(
                    "store.hours_settled",
                    extra={"hours": settled, "seconds": round(clock.monotonic() - t0, 3)},
                )
        except Exception as exc:
            # The tiers only speed reads up; a failure here must not stop the sink.
            _failed("settle", exc, metrics)
        if each_pass is not None:
            each_pass()
        if stage is not None:
            stage.beat()
        if stop.wait(SETTLE_EVERY_S):
            return


def _failed(task: str, exc: Exception, metrics: SelfMetrics | None) -> None:
    if metrics is not None:
        metrics.upkeep_failures.labels(task).inc()
    log.warning(
        f"upkeep.{task}_failed",
        extra={"error": f"{type(exc).__name__}: {str(exc).strip()}", "retry_in_s": SETTLE_EVERY_S},
    )


def purge_deleted(
    registry: AppRegistry, store: Store, now_ms: int, after_ms: int = PURGE_FOR_MS
) -> int:
    """Delete the data of deleted apps; returns the rows deleted.

    Lines of the app already in the pipeline when it was deleted still reach the store
    while its windows stay open (the lateness and the skew allowance) and again when a
    restarted rollup replays them, so an app is purged on every pass for `after_ms`
    after its deletion, and only then forgotten."""
    total = 0
    for app, deleted_ms in registry.deleted():
        rows = store.delete_owner(app.id)
        total += rows
        if rows:
            log.info("apps.data_purged", extra={"app": app.name, "rows": rows})
        if now_ms - deleted_ms > after_ms:
            registry.forget_deleted(app.id)
            log.info("apps.deleted_for_good", extra={"app": app.name})
    return total
