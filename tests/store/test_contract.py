"""One suite for every store: SQLite (embedded) and PostgreSQL on two shards."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest

from drainpipe import accum, codec
from drainpipe.codec import EncodedSummary
from drainpipe.model import MINUTE_MS, ROUTER, EventRecord, Summary
from drainpipe.store import DAY_MS, Store, StoredEvent, day_name, day_of


def encoded(summaries: Sequence[Summary]) -> list[EncodedSummary]:
    return [codec.encoded(s) for s in summaries]


DAY = day_of(1_795_000_000_000)
T0 = DAY * DAY_MS + 12 * 3_600_000  # noon UTC
rng = np.random.default_rng(7)


def router_summary(
    owner: str, process_type: str, start_ms: int, requests: int = 20, period_s: int = 60
) -> Summary:
    """A 1-minute router summary of `requests` random requests: stats, sketch, counts.

    In the form the store gives back: sketches packed, as the rollup puts them on the bus.
    """
    s = accum.new_summary(owner, process_type, ROUTER.family, period_s, start_ms)
    accum.add_columns(
        s,
        {
            "ts_ms": np.full(requests, start_ms, dtype=np.int64),
            "service_ms": rng.lognormal(3.0, 1.0, requests),
            "status": rng.choice(np.array([200, 200, 304, 404, 503], dtype=np.int16), requests),
            "code": np.zeros(requests, dtype=np.int16),
        },
    )
    return codec.decode_summary(codec.encode_summary(s))


def event(ts_ms: int, text: str, process_type: str = "web", kind: str = "restart") -> EventRecord:
    return EventRecord(ts_ms, process_type, f"{process_type}.1", kind, text, {"by": "test"})


def test_summaries_come_back_as_written(store: Store) -> None:
    written = [router_summary("app-a", "web", T0 + m * MINUTE_MS) for m in range(5)]
    store.write_summaries(encoded(written))
    assert store.read_summaries("app-a", ROUTER.family, T0, T0 + 5 * MINUTE_MS, "web") == written
    assert store.read_summaries("app-b", ROUTER.family, T0, T0 + 5 * MINUTE_MS) == []
    assert store.read_summaries("app-a", "dyno.load", T0, T0 + 5 * MINUTE_MS) == []
    assert store.read_summaries("app-a", ROUTER.family, T0, T0 + 5 * MINUTE_MS, period_s=600) == []


def test_events_come_back_in_time_order(store: Store) -> None:
    events = [
        event(T0 + 2_000, "State changed from up to crashed", kind="crash"),
        event(T0, "Restarting"),
        event(T0 + 1_000, "Deploy 059375fe by user a@example.com", process_type="", kind="deploy"),
        event(T0, "Restarting", process_type="worker"),  # same time, other dyno
    ]
    store.write_events([StoredEvent("app-a", e) for e in events])
    store.write_events([StoredEvent("app-b", event(T0, "Restarting"))])
    got = store.read_events("app-a", T0, T0 + MINUTE_MS)
    assert sorted(got, key=lambda e: (e.ts_ms, e.source)) == sorted(
        events, key=lambda e: (e.ts_ms, e.source)
    )
    assert [e.ts_ms for e in got] == sorted(e.ts_ms for e in events)


def test_rewriting_the_same_data_changes_nothing(store: Store) -> None:
    summaries = [
        router_summary("app-a", pt, T0 + m * MINUTE_MS)
        for m in range(3)
        for pt in ("web", "worker")
    ]
    events = [StoredEvent("app-a", event(T0 + i, f"line {i}")) for i in range(4)]
    for _ in range(2):
        store.write_summaries(encoded(summaries))
        store.write_summaries(
            encoded(summaries[:2] + summaries[:2])
        )  # duplicates inside one batch too
        store.write_events(events + events)
    assert len(store.read_summaries("app-a", ROUTER.family, T0, T0 + DAY_MS)) == len(summaries)
    assert len(store.read_events("app-a", T0, T0 + DAY_MS)) == len(events)


def test_a_version_replaces_the_stored_one_only_with_more_measurements(store: Store) -> None:
    small, big, bigger = (router_summary("app-a", "web", T0, n) for n in (3, 10, 12))
    store.write_summaries(encoded([big]))
    store.write_summaries(encoded([small]))  # a replayed, older version: ignored
    assert store.read_summaries("app-a", ROUTER.family, T0, T0 + MINUTE_MS) == [big]
    store.write_summaries(encoded([bigger, small]))
    assert store.read_summaries("app-a", ROUTER.family, T0, T0 + MINUTE_MS) == [bigger]


def test_reads_by_process_type_or_across_all(store: Store) -> None:
    web = [router_summary("app-a", "web", T0 + m * MINUTE_MS) for m in range(3)]
    worker = [router_summary("app-a", "worker", T0 + m * MINUTE_MS) for m in range(3)]
    other = [router_summary(f"app-{i}", "web", T0) for i in range(10)]
    store.write_summaries(encoded(worker + other + web))
    end = T0 + 3 * MINUTE_MS
    assert store.read_summaries("app-a", ROUTER.family, T0, end, "web") == web
    assert store.read_summaries("app-a", ROUTER.family, T0, end, "worker") == worker
    both = store.read_summaries("app-a", ROUTER.family, T0, end)
    assert both == sorted(web + worker, key=lambda s: (s.start_ms, s.process_type))


def test_a_read_window_includes_its_start_and_excludes_its_end(store: Store) -> None:
    summaries = [router_summary("app-a", "web", T0 + m * MINUTE_MS) for m in range(4)]
    store.write_summaries(encoded(summaries))
    store.write_events([StoredEvent("app-a", event(T0 + m * MINUTE_MS, f"m{m}")) for m in range(4)])
    lo, hi = T0 + MINUTE_MS, T0 + 3 * MINUTE_MS
    assert store.read_summaries("app-a", ROUTER.family, lo, hi, "web") == summaries[1:3]
    assert [e.text for e in store.read_events("app-a", lo, hi)] == ["m1", "m2"]
    assert store.read_summaries("app-a", ROUTER.family, lo, lo) == []


def test_a_write_may_span_midnight(store: Store) -> None:
    midnight = (DAY + 1) * DAY_MS
    summaries = [router_summary("app-a", "web", midnight + m * MINUTE_MS) for m in (-2, -1, 0, 1)]
    store.write_summaries(encoded(summaries))
    store.write_events([StoredEvent("app-a", event(s.start_ms, "x")) for s in summaries])
    window = (midnight - 5 * MINUTE_MS, midnight + 5 * MINUTE_MS)
    assert store.read_summaries("app-a", ROUTER.family, *window) == summaries
    assert len(store.read_events("app-a", *window)) == 4


def test_retention_drops_whole_days_and_names_them(store: Store) -> None:
    days = [DAY - 2, DAY - 1, DAY]
    for d in days:
        start = d * DAY_MS + 6 * 3_600_000
        store.write_summaries(encoded([router_summary("app-a", "web", start)]))
        store.write_events([StoredEvent("app-a", event(start, f"day {d}"))])
    cutoff = DAY * DAY_MS + 5 * 3_600_000  # 05:00 on DAY: DAY itself is kept whole
    expected = sorted(f"{kind}_{day_name(d)}" for kind in ("events", "summaries") for d in days[:2])
    assert store.drop_before(cutoff) == expected
    assert store.drop_before(cutoff) == []
    everything = ((DAY - 3) * DAY_MS, (DAY + 1) * DAY_MS)
    assert [
        s.start_ms // DAY_MS for s in store.read_summaries("app-a", ROUTER.family, *everything)
    ] == [DAY]
    assert [e.text for e in store.read_events("app-a", *everything)] == [f"day {DAY}"]
    # a late write for a dropped day is accepted again (and dropped by the next run)
    store.write_summaries(encoded([router_summary("app-a", "web", (DAY - 2) * DAY_MS)]))
    assert store.drop_before(cutoff) == [f"summaries_{day_name(DAY - 2)}"]


YEAR_1 = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("ms", "name"),
    [
        (YEAR_1, "00010101"),
        (int(datetime(999, 12, 31, tzinfo=UTC).timestamp() * 1000), "09991231"),
        (0, "19700101"),
    ],
)
def test_day_names_have_four_digit_years_so_they_sort_as_days_do(ms: int, name: str) -> None:
    assert day_name(day_of(ms)) == name


def test_retention_drops_a_day_of_year_one(store: Store) -> None:
    """Named `summaries_10101` (glibc's %Y), it sorted after every real day and stayed."""
    store.write_summaries(encoded([router_summary("app-a", "web", YEAR_1 + 6 * 3_600_000)]))
    assert store.drop_before(DAY * DAY_MS) == ["summaries_00010101"]


def test_deleting_an_owner_removes_its_rows_of_every_day_and_no_others(store: Store) -> None:
    days = [T0, T0 + DAY_MS]  # two day tables (partitions)
    for owner in ("app-a", "app-b"):
        store.write_summaries(encoded([router_summary(owner, "web", t) for t in days]))
        store.write_events([StoredEvent(owner, event(t, "Restarting")) for t in days])
    assert store.delete_owner("app-a") == 4
    end = T0 + 2 * DAY_MS
    assert store.read_summaries("app-a", ROUTER.family, T0, end) == []
    assert store.read_events("app-a", T0, end) == []
    assert len(store.read_summaries("app-b", ROUTER.family, T0, end)) == 2
    assert len(store.read_events("app-b", T0, end)) == 2
    assert store.delete_owner("app-a") == 0
