"""Rule metrics and thresholds: what is accepted, and what a refusal says."""

from __future__ import annotations

import pytest

from drainpipe.alert import rules
from drainpipe.alert.rules import RuleError


def test_every_documented_metric_is_read() -> None:
    got = {
        spec: (m.family, m.field, m.below, m.counted)
        for spec in (
            "latency_p95", "error_rate", "memory_quota", "load", "errors:h12",
            "throughput_below", "custom.db.query:p95", "custom.orders:total",
        )
        for m in [rules.metric(spec)]
    }  # fmt: skip
    assert got == {
        "latency_p95": ("router", "p95", False, False),
        "error_rate": ("router", "error_rate", False, False),
        "memory_quota": ("dyno.memory", "memory_quota", False, False),
        "load": ("dyno.load", "load_avg_1m_max", False, False),
        "errors:h12": ("router", "H12", False, False),
        "throughput_below": ("router", "requests", True, True),
        "custom.db.query:p95": ("custom.db.query", "p95", False, False),
        "custom.orders:total": ("custom.orders", "total", False, False),
    }


def test_error_codes_are_named_as_the_rollup_counts_them() -> None:
    assert [rules.metric(f"errors:{c}").field for c in ("H5", "h012", "H12", "H1234")] == [
        "H05", "H12", "H12", "H1234",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("latency", "is not one of latency_p95, error_rate"),
        ("errors:R14", "a router error like H12"),
        ("custom.db.query:p42", "field 'p42' is not one of count, sum"),
        ("custom.@late.router:total", "drainpipe's own"),
    ],
)
def test_unknown_metrics_are_refused_with_what_is_allowed(spec: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        rules.metric(spec)


@pytest.mark.parametrize(
    ("spec", "threshold", "sensitivity", "renotify", "message"),
    [
        ("latency_p95", 49, 5, 60, "at least 50 ms"),
        ("error_rate", 0.4, 5, 60, "0.5 to 100"),
        ("error_rate", 101, 5, 60, "0.5 to 100"),
        ("memory_quota", 0, 5, 60, "1 to 1000"),
        ("throughput_below", 0, 5, 60, "above 0"),
        ("load", float("nan"), 5, 60, "not a number"),
        ("load", -1, 5, 60, "must not be negative"),
        ("load", 4, 3, 60, "one of 1, 5 or 10"),
        ("load", 4, 5, 30, "one of 5, 60 or 1440"),
    ],
)
def test_thresholds_and_periods_are_checked(
    spec: str, threshold: float, sensitivity: int, renotify: int, message: str
) -> None:
    with pytest.raises(RuleError, match=message):
        rules.check(rules.metric(spec), threshold, sensitivity, renotify)
    rules.check(rules.metric("latency_p95"), 50, 1, 5)  # Heroku's lowest
    rules.check(rules.metric("error_rate"), 0.5, 10, 1440)
