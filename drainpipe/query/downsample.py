"""Downsampling on demand: merge 1-minute summaries into steps and shape API points.

Percentiles come from merged sketches, never from averaging percentiles; means come
from merged sums and counts. Everything here is pure.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Final

from drainpipe import accum, sketch
from drainpipe.model import Stat, Summary
from drainpipe.model import iso as iso  # the API's times

Point = dict[str, float | int | str | None]


def _distribution(s: Summary, name: str) -> Point | None:
    """count, mean, min, max and quantiles of a sketched column (a time, in ms)."""
    st = s.stats.get(name)
    if st is None:
        return None
    sk = s.sketches.get(name, sketch.EMPTY)
    p50, p95, p99 = sketch.quantiles(sk, (0.5, 0.95, 0.99), lo=st.min, hi=st.max)
    return {
        "count": st.count,
        "mean": accum.mean(st),
        "min": st.min,
        "max": st.max,
        "p50": p50,
        "p95": p95,
        "p99": p99,
    }


def _latency(s: Summary) -> Point | None:
    return _distribution(s, "service_ms")


def _connect(s: Summary) -> Point | None:
    """The router's time to connect to a dyno: what queue-time autoscalers watch."""
    return _distribution(s, "connect_ms")


def _bytes(s: Summary) -> Point | None:
    st = s.stats.get("bytes")
    if st is None:
        return None
    return {"count": st.count, "sum": st.sum, "mean": accum.mean(st), "max": st.max}


def _status(s: Summary) -> Point | None:
    point: Point = {"total": s.n}
    point.update({k: v for k, v in sorted(s.counts.items()) if k.endswith("xx")})
    return point


def _errors(s: Summary) -> Point | None:
    codes = {k: v for k, v in sorted(s.counts.items()) if k.startswith("H")}
    return dict(codes) if codes else None


def _mean_max(point: Point, name: str, st: Stat | None, fields: tuple[str, ...]) -> None:
    if st is None:
        return
    if "mean" in fields:
        point[f"{name}_mean"] = accum.mean(st)
    if "max" in fields:
        point[f"{name}_max"] = st.max


def _memory(s: Summary) -> Point | None:
    point: Point = {}
    _mean_max(point, "memory_total", s.stats.get("memory_total"), ("mean", "max"))
    _mean_max(point, "memory_rss", s.stats.get("memory_rss"), ("mean", "max"))
    _mean_max(point, "memory_cache", s.stats.get("memory_cache"), ("mean", "max"))
    _mean_max(point, "memory_swap", s.stats.get("memory_swap"), ("max",))
    quota = s.stats.get("memory_quota")
    if quota is not None:
        point["memory_quota"] = quota.max
    return point or None


def _load(s: Summary) -> Point | None:
    point: Point = {}
    _mean_max(point, "load_avg_1m", s.stats.get("load_avg_1m"), ("mean", "max"))
    _mean_max(point, "load_avg_5m", s.stats.get("load_avg_5m"), ("mean",))
    _mean_max(point, "load_avg_15m", s.stats.get("load_avg_15m"), ("mean",))
    return point or None


def _custom(s: Summary) -> Point | None:
    point: Point = {}
    measure = s.stats.get("measure")
    if measure is not None:
        sk = s.sketches.get("measure", sketch.EMPTY)
        p50, p95, p99 = sketch.quantiles(sk, (0.5, 0.95, 0.99), lo=measure.min, hi=measure.max)
        point.update(
            count=measure.count,
            sum=measure.sum,
            mean=accum.mean(measure),
            min=measure.min,
            max=measure.max,
            p50=p50,
            p95=p95,
            p99=p99,
        )
    counted = s.stats.get("count")
    if counted is not None:
        point["total"] = counted.sum
    sample = s.stats.get("sample")
    if sample is not None:
        point.update(sample_mean=accum.mean(sample), sample_min=sample.min, sample_max=sample.max)
    return point or None


CUSTOM_PREFIX: Final = "custom."
# An app's own names, or drainpipe's reserved counts about it (`model.late_name`, ...).
CUSTOM_NAME: Final = re.compile(r"^(?:@late\.|@skipped\.)?[A-Za-z0-9_.\-]{1,200}$")

# metric name -> (summary family, point builder)
METRICS: Final[dict[str, tuple[str, Callable[[Summary], Point | None]]]] = {
    "router.latency": ("router", _latency),
    "router.status": ("router", _status),
    "router.errors": ("router", _errors),
    "router.connect": ("router", _connect),
    "router.bytes": ("router", _bytes),
    "dyno.memory": ("dyno.memory", _memory),
    "dyno.load": ("dyno.load", _load),
}


def spec(metric: str) -> tuple[str, Callable[[Summary], Point | None]] | None:
    """(summary family, point builder) of a metric name; custom.<name> for app metrics."""
    if metric in METRICS:
        return METRICS[metric]
    if metric.startswith(CUSTOM_PREFIX) and CUSTOM_NAME.match(metric[len(CUSTOM_PREFIX) :]):
        return metric, _custom
    return None


def metrics_of(family: str) -> list[str]:
    """The metric names served from a summary family (custom families are their own)."""
    if family.startswith(CUSTOM_PREFIX):
        return [family]
    return [name for name, (fam, _) in METRICS.items() if fam == family]


def series(metric: str, summaries: Iterable[Summary], step_s: int) -> list[dict[str, object]]:
    """Points per process type, one per step-aligned interval that has data."""
    found = spec(metric)
    if found is None:
        raise KeyError(metric)
    _, point_of = found
    step_ms = step_s * 1000
    buckets: dict[str, dict[int, list[Summary]]] = defaultdict(lambda: defaultdict(list))
    for s in summaries:
        buckets[s.process_type][s.start_ms - s.start_ms % step_ms].append(s)
    out: list[dict[str, object]] = []
    for pt in sorted(buckets):
        points = []
        for start in sorted(buckets[pt]):
            m = accum.merged(buckets[pt][start], start, step_s)
            p = None if m is None else point_of(m)
            if p is not None:
                points.append({"t": iso(start), **p})
        if points:
            out.append({"process_type": pt, "points": points})
    return out
