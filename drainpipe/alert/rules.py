"""Alert rules: what a rule watches, its threshold, and how often it may say so.

A rule's metric is one of Heroku's two (p95 response time, the failed share of
requests) or one of those Heroku's users ask for: memory as a share of the quota, dyno
load, one router error code's count, throughput falling below a floor, and any field of
a custom metric. Thresholds are checked here, so a bad rule is refused when it is made,
with a message that says which values are allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

SENSITIVITIES: Final = (1, 5, 10)  # consecutive minutes the condition must hold
RENOTIFY: Final = (5, 60, 1440)  # minutes between reminders while it lasts
CUSTOM_FIELDS: Final = (
    "count", "sum", "mean", "min", "max", "p50", "p95", "p99",
    "total", "sample_mean", "sample_min", "sample_max",
)  # fmt: skip
_CODE: Final = re.compile(r"^H[0-9]{1,4}$")
_CUSTOM: Final = re.compile(r"^custom\.(?P<name>[A-Za-z0-9_.\-]{1,200}):(?P<field>[a-z0-9_]+)$")
METRIC_HELP: Final = (
    "latency_p95, error_rate, memory_quota, load, errors:<H code>, throughput_below "
    "or custom.<name>:<field>"
)


class RuleError(ValueError):
    """A rule that cannot be made, and why."""


@dataclass(frozen=True, slots=True)
class Metric:
    """What a rule reads of each minute.

    `family` is the summary family; `below` means the condition is value < threshold
    (a floor), else value >= threshold; `counted` means a minute without a summary is
    a minute with none of it (0), not a minute without data: only for the throughput
    floor, which is there to notice traffic that stopped. An error code's count is 0 in
    a minute with requests and none of that code, but no data in a minute without any,
    so a firing error rule whose data stops says "no data", not "resolved".
    """

    spec: str  # as the user wrote it
    family: str
    field: str
    unit: str
    below: bool = False
    counted: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    app: str  # the app's name
    owner: str  # the app's id: the owner of its summaries
    metric: Metric
    threshold: float
    process_type: str = "web"
    sensitivity: int = 5
    renotify: int = 60
    webhook: str | None = None
    webhook_secret: str | None = None
    slack: str | None = None
    email: tuple[str, ...] = field(default_factory=tuple)

    def over(self, value: float) -> bool:
        """Whether one minute's value meets the condition."""
        return value < self.threshold if self.metric.below else value >= self.threshold


def metric(spec: str) -> Metric:
    """The Metric a `--metric` value names; RuleError when it names none."""
    if spec == "latency_p95":
        return Metric(spec, "router", "p95", "ms")
    if spec == "error_rate":
        return Metric(spec, "router", "error_rate", "%")
    if spec == "memory_quota":
        return Metric(spec, "dyno.memory", "memory_quota", "%")
    if spec == "load":
        return Metric(spec, "dyno.load", "load_avg_1m_max", "")
    if spec == "throughput_below":
        return Metric(spec, "router", "requests", "requests/min", below=True, counted=True)
    if spec.startswith("errors:"):
        code = spec.removeprefix("errors:").upper()
        if not _CODE.match(code):
            raise RuleError(f"--metric {spec!r}: the code must be a router error like H12")
        code = f"H{int(code[1:]):02d}"  # as the rollup counts it: H5 and H005 are H05
        return Metric(f"errors:{code}", "router", code, "errors/min")
    if spec.startswith("custom.@"):
        raise RuleError(f"--metric {spec!r}: names starting with @ are drainpipe's own")
    custom = _CUSTOM.match(spec)
    if custom is not None:
        name, what = custom["name"], custom["field"]
        if what not in CUSTOM_FIELDS:
            raise RuleError(
                f"--metric {spec!r}: field {what!r} is not one of {', '.join(CUSTOM_FIELDS)}"
            )
        return Metric(spec, f"custom.{name}", what, "")
    raise RuleError(f"--metric {spec!r} is not one of {METRIC_HELP}")


def check(metric: Metric, threshold: float, sensitivity: int, renotify: int) -> None:
    """RuleError unless the threshold suits the metric and the periods are Heroku's."""
    if threshold != threshold or threshold in (float("inf"), float("-inf")):
        raise RuleError(f"--threshold {threshold} is not a number")
    if metric.spec == "latency_p95" and threshold < 50:
        raise RuleError(f"--threshold {threshold:g}: a latency threshold is at least 50 ms")
    if metric.spec == "error_rate" and not 0.5 <= threshold <= 100:
        raise RuleError(
            f"--threshold {threshold:g}: an error rate is a share of requests, 0.5 to 100 (%)"
        )
    if metric.spec == "memory_quota" and not 1 <= threshold <= 1000:
        raise RuleError(f"--threshold {threshold:g}: memory is a share of the quota, 1 to 1000 (%)")
    if metric.spec == "throughput_below" and threshold <= 0:
        raise RuleError(f"--threshold {threshold:g}: a throughput floor is above 0 requests/min")
    if threshold < 0:
        raise RuleError(f"--threshold {threshold:g} must not be negative")
    if sensitivity not in SENSITIVITIES:
        raise RuleError(f"--sensitivity {sensitivity}: one of 1, 5 or 10 minutes")
    if renotify not in RENOTIFY:
        raise RuleError(f"--renotify {renotify}: one of 5, 60 or 1440 minutes")
