"""A rule's value of a minute equals what the Metrics API serves for that minute."""

from __future__ import annotations

import numpy as np
import pytest

from drainpipe import accum
from drainpipe.alert import rules, values
from drainpipe.model import CUSTOM_KINDS, Summary
from drainpipe.query import downsample

T = 1_795_000_020_000 - 1_795_000_020_000 % 60_000


def router(service: list[float], status: list[int], code: list[int]) -> Summary:
    s = accum.new_summary("o", "web", "router", 60, T)
    n = len(service)
    accum.add_columns(
        s,
        {
            "ts_ms": np.full(n, T, np.int64),
            "service_ms": np.array(service),
            "status": np.array(status, np.int16),
            "code": np.array(code, np.int16),
        },
    )
    return s


def api_point(metric: str, s: Summary) -> dict[str, object]:
    (series,) = downsample.series(metric, [s], 60)
    points = series["points"]
    assert isinstance(points, list)
    return dict(points[0])


def test_router_rules_read_what_the_api_serves() -> None:
    s = router([12, 40, 900, 30000, 55], [200, 200, 503, 503, 404], [0, 0, 0, 12, 0])
    assert values.value(rules.metric("latency_p95"), s) == api_point("router.latency", s)["p95"]
    status = api_point("router.status", s)
    assert values.value(rules.metric("error_rate"), s) == pytest.approx(
        100 * status["5xx"] / status["total"]  # type: ignore[operator]
    )
    assert values.value(rules.metric("errors:H12"), s) == 1
    assert values.value(rules.metric("errors:H13"), s) == 0
    assert values.value(rules.metric("throughput_below"), s) == 5


def test_a_minute_without_a_summary_is_no_data_but_for_the_throughput_floor() -> None:
    assert values.value(rules.metric("latency_p95"), None) is None
    assert values.value(rules.metric("error_rate"), None) is None
    assert values.value(rules.metric("throughput_below"), None) == 0  # traffic stopped
    # No router summary is no data, not zero errors: a firing error rule whose data
    # stops says so instead of resolving.
    assert values.value(rules.metric("errors:H12"), None) is None
    assert values.value(rules.metric("custom.orders:total"), None) is None
    assert values.value(rules.metric("custom.db.query:p95"), None) is None


def test_memory_is_the_highest_total_against_the_quota() -> None:
    s = accum.new_summary("o", "web", "dyno.memory", 60, T)
    cols = {
        "memory_total": [400.0, 480.0], "memory_rss": [1.0, 1.0], "memory_cache": [0.0, 0.0],
        "memory_swap": [0.0, 0.0], "memory_quota": [512.0, 512.0],
    }  # fmt: skip
    accum.add_columns(
        s, {"ts_ms": np.full(2, T, np.int64), **{k: np.array(v) for k, v in cols.items()}}
    )
    assert values.value(rules.metric("memory_quota"), s) == pytest.approx(100 * 480 / 512)


def test_custom_fields_read_what_the_api_serves() -> None:
    s = accum.new_summary("o", "web", "custom.db.query", 60, T)
    kind = np.array([CUSTOM_KINDS["measure"]] * 4 + [CUSTOM_KINDS["count"]], np.int8)
    raw = {"ts_ms": np.full(5, T, np.int64), "value": np.array([5, 7, 9, 40, 3.0]), "kind": kind}
    accum.add_columns(s, accum.custom_columns(raw))
    point = api_point("custom.db.query", s)
    for field in ("count", "sum", "mean", "min", "max", "p50", "p95", "p99", "total"):
        assert values.value(rules.metric(f"custom.db.query:{field}"), s) == point[field], field
