"""One PostgreSQL shard down: the API answers from the others and says which shards are
missing; a series that lives only on the missing shard is a 503 to retry; back to whole
answers once the shard is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from drainpipe import codec
from drainpipe.clock import FixedClock
from drainpipe.model import EventRecord
from drainpipe.query.api import Api
from drainpipe.service import http
from drainpipe.store import StoredEvent, pg_shard
from drainpipe.store.apps import sqlite_registry
from drainpipe.store.postgres import PostgresStore
from drainpipe.telemetry.metrics import SelfMetrics
from tests.conftest import FIXED_NOW_MS
from tests.store.test_tiers import minute
from tests.support import pg_cluster

PROCESS_TYPES = [f"pt{i}" for i in range(12)]
T = FIXED_NOW_MS - 30 * 60_000
T = T - T % 60_000


@pytest.fixture
def outage(
    tmp_path: Path, pg_dsn_factory: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Callable[..., Any], PostgresStore, pg_cluster.Cluster, str, SelfMetrics]]:
    monkeypatch.setattr(pg_shard, "DOWN_FOR_S", 0.5)
    cluster = pg_cluster.create()
    clock = FixedClock(FIXED_NOW_MS)
    store = PostgresStore([pg_dsn_factory(), cluster.dsn], clock=clock)
    registry = sqlite_registry(tmp_path / "apps.sqlite", clock)
    shop = registry.create("shop")
    store.write_summaries([codec.encoded(minute(shop.app.id, pt, T, 5)) for pt in PROCESS_TYPES])
    store.write_events([StoredEvent(shop.app.id, EventRecord(T, "pt0", "app", "deploy", "v2", {}))])
    metrics = SelfMetrics()
    asgi = http.app(metrics, api=Api(registry, store, clock, metrics=metrics))

    def get(path: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=asgi)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                auth = {"Authorization": f"Bearer {shop.api_token}"}
                return await client.get(path, headers=auth)

        return asyncio.run(go())

    yield get, store, cluster, shop.app.id, metrics
    store.close()
    registry.close()
    cluster.destroy()


def test_a_shard_down_hides_only_its_series_and_says_so(
    outage: tuple[Callable[..., Any], PostgresStore, pg_cluster.Cluster, str, SelfMetrics],
) -> None:
    get, store, cluster, owner, metrics = outage
    on = {pt: store.ring.shard_for(owner, pt) for pt in PROCESS_TYPES}
    assert set(on.values()) == {0, 1}  # some on each
    path = "/api/v1/apps/shop/metrics/router.status?window=2h"
    whole = get(path).json()
    assert "partial" not in whole and len(whole["series"]) > 0
    cluster.stop()
    answer = get(path)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["partial"]["missing_shards"] == [1]
    shown = {s["process_type"] for s in got["series"]}
    assert shown == {pt for pt, shard in on.items() if shard == 0}
    here = next(pt for pt, shard in on.items() if shard == 0)
    away = next(pt for pt, shard in on.items() if shard == 1)
    alone = get(f"{path}&process_type={here}")
    assert alone.status_code == 200 and "partial" not in alone.json()
    gone = get(f"{path}&process_type={away}")
    assert gone.status_code == 503 and gone.headers["retry-after"] == "5"
    assert "PostgreSQL shard 1" in gone.json()["error"]
    for other in ("/api/v1/apps/shop", "/api/v1/apps/shop/events?window=2h"):
        r = get(other)
        assert r.status_code == 200 and r.json()["partial"]["missing_shards"] == [1], other
    assert 'drainpipe_api_partial_answers_total{shard="1"}' in metrics.render().decode()
    cluster.start()
    time.sleep(0.6)  # the shard is tried again once DOWN_FOR_S has passed
    assert get(path).json() == whole
