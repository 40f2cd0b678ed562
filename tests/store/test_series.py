"""A store lists an app's series: each process type and family with data, first to last."""

from __future__ import annotations

from drainpipe.model import MINUTE_MS
from drainpipe.store import DAY_MS, SeriesSpan, Store
from drainpipe.store.tiers import HOUR_MS
from tests.store.test_tiers import H0, minute, write


def test_series_span_every_day_table_and_leave_other_apps_out(store: Store) -> None:
    write(
        store,
        [
            minute("shop", "web", H0, 5),
            minute("shop", "web", H0 - DAY_MS + 3 * MINUTE_MS, 5),  # the day before
            minute("shop", "worker", H0 + 7 * MINUTE_MS, 5),
            minute("blog", "web", H0 - 2 * DAY_MS, 5),
        ],
    )
    hour_row = minute("shop", "web", H0 + HOUR_MS, 5)
    hour_row.period_s = 3600  # tier rows are not minutes: they do not widen a span
    write(store, [hour_row])
    assert store.series("shop") == [
        SeriesSpan("web", "router", H0 - DAY_MS + 3 * MINUTE_MS, H0),
        SeriesSpan("worker", "router", H0 + 7 * MINUTE_MS, H0 + 7 * MINUTE_MS),
    ]
    assert store.series("blog") == [SeriesSpan("web", "router", H0 - 2 * DAY_MS, H0 - 2 * DAY_MS)]
    assert store.series("nobody") == []
