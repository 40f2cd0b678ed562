"""PostgreSQL specifics: shard routing, COPY chunking, day partitions in the catalog."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import psycopg
import pytest

from drainpipe import codec
from drainpipe.codec import EncodedSummary
from drainpipe.model import MINUTE_MS, ROUTER, EventRecord, Summary, partition_key
from drainpipe.store import DAY_MS, StoredEvent, day_name, day_of
from drainpipe.store.postgres import PostgresStore
from drainpipe.store.shards import ShardRing


def encoded(summaries: Sequence[Summary]) -> list[EncodedSummary]:
    return [codec.encoded(s) for s in summaries]


DAY = day_of(1_795_000_000_000)
T0 = DAY * DAY_MS

DsnFactory = Callable[[], str]


def owners(n: int) -> list[str]:
    return [str(uuid.UUID(int=i * 7919 + 12345)) for i in range(n)]


def summary(owner: str, start_ms: int, n: int = 1, process_type: str = "web") -> Summary:
    return Summary(owner, process_type, ROUTER.family, 60, start_ms, n=n, counts={"2xx": n})


def partitions(dsn: str, parent: str, schema: str = "drainpipe") -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY 1",
            (f"{schema}.{parent}",),
        ).fetchall()
    return [r[0] for r in rows]


def day_tables(dsn: str, schema: str = "drainpipe") -> list[str]:
    """Every table named like a day partition, attached or not."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname ~ '_[0-9]{8}$' ORDER BY 1",
            (schema,),
        ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize(
    ("owner", "process_type", "shard"),
    [  # pinned: a change here would send existing series to the wrong shard
        ("app-a", "web", 0),
        ("app-b", "web", 1),
        ("app-c", "web", 1),
    ],
)
def test_routing_is_a_stable_function_of_owner_and_process_type(
    owner: str, process_type: str, shard: int
) -> None:
    assert ShardRing(2).shard_for(owner, process_type) == shard
    assert ShardRing(2).shard_for_key(partition_key(owner, process_type)) == shard


def test_a_thousand_owners_spread_evenly_over_two_shards() -> None:
    counts = ShardRing(2).spread(partition_key(o, "web") for o in owners(1000))
    assert all(400 <= c <= 600 for c in counts), counts


def test_adding_a_shard_moves_only_the_series_it_takes_over() -> None:
    two, three = ShardRing(2), ShardRing(3)
    keys = [partition_key(o, pt) for o in owners(1000) for pt in ("web", "worker")]
    moved = [k for k in keys if two.shard_for_key(k) != three.shard_for_key(k)]
    assert all(three.shard_for_key(k) == 2 for k in moved)
    assert 0.2 < len(moved) / len(keys) < 0.45


def test_each_series_is_stored_on_its_ring_shard_only(pg_dsn_factory: DsnFactory) -> None:
    dsns = [pg_dsn_factory(), pg_dsn_factory()]
    store = PostgresStore(dsns)
    series = [(o, pt) for o in owners(40) for pt in ("web", "worker")]
    store.write_summaries(encoded([summary(o, T0, process_type=pt) for o, pt in series]))
    store.close()
    for index, dsn in enumerate(dsns):
        with psycopg.connect(dsn) as conn:
            rows = conn.execute("SELECT owner, process_type FROM drainpipe.summaries").fetchall()
        expected = {s for s in series if store.ring.shard_for(*s) == index}
        assert set(rows) == expected and 0 < len(rows) < len(series)


def test_a_big_batch_is_copied_in_chunks_of_at_most_1024(pg_dsn_factory: DsnFactory) -> None:
    dsn = pg_dsn_factory()
    store = PostgresStore([dsn])
    batch = [summary(o, T0 + m * MINUTE_MS) for o in owners(50) for m in range(100)]
    assert len(batch) == 5000
    store.write_summaries(encoded(batch))
    assert store.stats.copies == 5  # 4 x 1024 + 904
    assert store.stats.largest_copy == 1024
    assert store.stats.rows_copied == 5000
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM drainpipe.summaries").fetchone() == (5000,)
    store.close()


def test_day_partitions_are_created_on_demand_and_dropped_by_retention(
    pg_dsn_factory: DsnFactory,
) -> None:
    dsn = pg_dsn_factory()
    store = PostgresStore([dsn], schema="metrics")
    for d in (DAY - 1, DAY, DAY + 1):
        store.write_summaries(encoded([summary("app-a", d * DAY_MS + 60 * MINUTE_MS)]))
    store.write_events(
        [StoredEvent("app-a", EventRecord(T0, "web", "web.1", "restart", "Restarting", {}))]
    )
    names = [day_name(d) for d in (DAY - 1, DAY, DAY + 1)]
    assert partitions(dsn, "summaries", "metrics") == [f"summaries_{n}" for n in names]
    assert partitions(dsn, "events", "metrics") == [f"events_{names[1]}"]

    assert store.drop_before((DAY + 1) * DAY_MS) == [
        f"events_{names[1]}",
        f"summaries_{names[0]}",
        f"summaries_{names[1]}",
    ]
    assert partitions(dsn, "summaries", "metrics") == [f"summaries_{names[2]}"]
    assert day_tables(dsn, "metrics") == [f"summaries_{names[2]}"]  # dropped, not just detached
    store.close()


def test_a_partition_dropped_by_another_process_is_recreated_on_write(
    pg_dsn_factory: DsnFactory,
) -> None:
    dsn = pg_dsn_factory()
    sink, retention = PostgresStore([dsn]), PostgresStore([dsn])
    sink.write_summaries(encoded([summary("app-a", T0, n=1)]))
    assert retention.drop_before(T0 + DAY_MS) == [f"summaries_{day_name(DAY)}"]
    sink.write_summaries(encoded([summary("app-a", T0, n=2)]))  # its cache still lists the day
    assert [s.n for s in sink.read_summaries("app-a", ROUTER.family, T0, T0 + DAY_MS)] == [2]
    sink.close()
    retention.close()


def test_text_that_postgres_cannot_hold_is_stored_not_refused(pg_dsn_factory: DsnFactory) -> None:
    store = PostgresStore([pg_dsn_factory()])
    long_line = "Error R14 (Memory quota exceeded) " + "x" * 10_000
    events = [
        StoredEvent("app-a", EventRecord(T0, "web", "web.1", "error", long_line, {"code": "R14"})),
        StoredEvent("app-a", EventRecord(T0 + 1, "web", "web.1", "error", "nul\0byte", {})),
    ]
    store.write_events(events)
    store.write_events(events)
    got = store.read_events("app-a", T0, T0 + 2)
    assert [e.text for e in got] == [long_line, "nul\ufffdbyte"]
    store.close()


def test_reads_reconnect_after_the_server_terminated_pooled_connections(
    pg_dsn_factory: DsnFactory,
) -> None:
    dsns = [pg_dsn_factory(), pg_dsn_factory()]
    store = PostgresStore(dsns)
    try:
        series = [(o, "web") for o in owners(8)]
        store.write_summaries(encoded([summary(o, T0) for o, _ in series]))
        event = StoredEvent(series[0][0], EventRecord(T0, "web", "app", "deploy", "v2", {}))
        store.write_events([event])
        reads: dict[str, Callable[[], int]] = {
            "summaries": lambda: len(
                store.read_summaries(series[0][0], ROUTER.family, T0, T0 + DAY_MS)
            ),
            "series": lambda: len(store.series(series[0][0])),
            "unsettled": lambda: len(store.unsettled_hours(T0, T0 + DAY_MS)),
            "events": lambda: len(store.read_events(series[0][0], T0, T0 + DAY_MS)),
        }
        before = {name: read() for name, read in reads.items()}
        for name, read in reads.items():
            for dsn in dsns:  # every pooled backend goes, as in a failover
                with psycopg.connect(dsn, autocommit=True) as admin:
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
            assert read() == before[name], name  # answered, on new connections
    finally:
        store.close()
