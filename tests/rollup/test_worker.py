"""The rollup worker on a real Kafka-protocol broker: what it commits when a send fails."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from drainpipe.bus import BusUnavailable, OutRecord
from drainpipe.ingest import records
from drainpipe.model import MINUTE_MS, ROUTER
from drainpipe.rollup.worker import GROUP, RollupWorker
from drainpipe.telemetry.metrics import SelfMetrics
from tests.bus.test_contract import Reader, kafka_bus
from tests.support import drains

T0 = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS


def test_a_rollup_whose_summaries_were_not_sent_commits_nothing_past_them(
    kafka_bootstrap: str, kafka_client_tuning: dict[str, str]
) -> None:
    """Leaving a Kafka group runs the revoke callback; after a failed send it must not
    flush and commit, or the windows that send carried are lost."""
    bus = kafka_bus(kafka_bootstrap, kafka_client_tuning, partitions=1)
    try:
        early = drains.router(T0, 5, 200)  # its minute closes with the next line
        late = drains.router(T0 + 10 * MINUTE_MS, 5, 200)
        out: list[OutRecord] = []
        for line in (early, late):
            out += records.build("shop", [line.encode()], T0 + 11 * MINUTE_MS, 300_000).records
        bus.producer().send(out).result(timeout=20)
        worker = RollupWorker(bus, SelfMetrics(), flush_interval_s=0.05, lateness_s=300)

        def broker_down(_: object) -> Future[None]:
            failed: Future[None] = Future()
            failed.set_exception(BusUnavailable("the broker did not acknowledge"))
            return failed

        worker._producer.send = broker_down  # type: ignore[method-assign,assignment]
        with pytest.raises(BusUnavailable):
            worker.run(threading.Event())
        committed = Reader(bus, GROUP, [ROUTER.topic]).wait_assigned()
        assert committed[(ROUTER.topic, 0)].offset == 0  # both lines are read again
    finally:
        bus.close()
