"""A rule's value of one minute, from that minute's summary of the rule's series.

The same numbers as the Metrics API serves for that minute: the p95 from the merged
sketch, the failed share from the status counts, memory from the minute's highest
`memory_total` against its quota. None means the minute has no data for the rule (no
requests for a latency rule, no samples for memory); the throughput floor reads a
minute without a summary as 0 requests.
"""

from __future__ import annotations

from drainpipe import accum, sketch
from drainpipe.alert.rules import Metric
from drainpipe.model import Stat, Summary


def _quantile(s: Summary, name: str, q: float) -> float | None:
    st = s.stats.get(name)
    if st is None:
        return None
    sk = s.sketches.get(name, sketch.EMPTY)
    return sketch.quantiles(sk, (q,), lo=st.min, hi=st.max)[0]


def _custom(s: Summary, field: str) -> float | None:
    if field == "total":
        counted = s.stats.get("count")
        return None if counted is None else counted.sum
    if field.startswith("sample_"):
        sample = s.stats.get("sample")
        if sample is None:
            return None
        return {"sample_mean": accum.mean(sample), "sample_min": sample.min}.get(field, sample.max)
    measure = s.stats.get("measure")
    if measure is None:
        return None
    if field in ("p50", "p95", "p99"):
        return _quantile(s, "measure", int(field[1:]) / 100)
    plain: dict[str, float | None] = {
        "count": float(measure.count),
        "sum": measure.sum,
        "mean": accum.mean(measure),
        "min": measure.min,
        "max": measure.max,
    }
    return plain[field]


def _share(part: float, whole: Stat | None) -> float | None:
    return None if whole is None or whole.max <= 0 else 100.0 * part / whole.max


def value(metric: Metric, summary: Summary | None) -> float | None:
    """The metric's value of the minute `summary` covers (None: no summary that minute)."""
    if summary is None:
        return 0.0 if metric.counted else None
    if metric.family == "router":
        if metric.field == "p95":
            return _quantile(summary, "service_ms", 0.95)
        if metric.field == "requests":
            return float(summary.n)
        if metric.field == "error_rate":
            requests = sum(n for k, n in summary.counts.items() if k.endswith("xx"))
            return 100.0 * summary.counts.get("5xx", 0) / requests if requests else None
        return float(summary.counts.get(metric.field, 0))  # an H code
    if metric.family == "dyno.memory":
        total = summary.stats.get("memory_total")
        return None if total is None else _share(total.max, summary.stats.get("memory_quota"))
    if metric.family == "dyno.load":
        load = summary.stats.get("load_avg_1m")
        return None if load is None else load.max
    return _custom(summary, metric.field)
