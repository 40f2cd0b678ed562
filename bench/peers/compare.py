"""Per-minute answers side by side: exact, drainpipe's API, InfluxDB's query, mtail's counters.

What is compared, for every (app, minute) of the data set:
- counts: drainpipe's `router.latency` count and `router.status` classes, InfluxDB's
  count(service_ms) and mtail's counters must all equal the exact counts;
- means: drainpipe's and InfluxDB's mean(service_ms) within 1e-9 relative of the exact mean;
- p95: InfluxDB's percentile(service_ms, 95) is nearest-rank, sorted[floor(0.95 n + 0.5) - 1],
  and must equal that exact value; drainpipe's p95 is the value at rank floor(0.95 (n - 1))
  from a sketch with 0.5 % relative error, and must be within 0.5 % of that exact value.
  The two ranks differ by at most one, so the two tools agree when drainpipe's p95 is
  within 0.5 % of InfluxDB's; where the values at the two ranks differ, the gap between
  the two tools is reported as well.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bench.peers import data
from bench.peers.drainpipe_side import MinutePoint
from bench.peers.influx import MinuteRow
from bench.peers.mtail import Counts

REL_ERR = 0.005


@dataclass
class Agreement:
    minutes: int = 0
    counts_equal: bool = True  # drainpipe and InfluxDB counts = exact, every minute
    means_equal: bool = True
    influx_p95_exact: bool = True  # = exact nearest-rank value
    drainpipe_p95_within: bool = True  # within 0.5 % of exact value at floor(0.95 (n-1))
    p95_within_each_other: int = 0  # minutes where |dp - influx| <= 0.5 % of influx
    ranks_differ: int = 0  # minutes where the two rank definitions pick different values
    same_rank_within: int = 0  # minutes with the same value at both ranks, tools within 0.5 %
    max_p95_gap: float = 0.0  # max |dp - influx| / influx
    max_dp_p95_error: float = 0.0  # max |dp - exact lower-rank| / exact
    mtail_counts_equal: bool = True  # by class and histogram count/sum, every minute
    problems: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return (
            self.counts_equal
            and self.means_equal
            and self.influx_p95_exact
            and self.drainpipe_p95_within
            and self.mtail_counts_equal
        )

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["agree"] = self.agree
        d["problems"] = self.problems[:10]
        return d


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * abs(b) * (1 + 1e-9) + 1e-12


def compare(
    truth: dict[tuple[str, int], data.Truth],
    dp: dict[tuple[str, int], MinutePoint],
    influx: dict[str, dict[int, MinuteRow]],
    mtail: Counts | None,
) -> Agreement:
    ag = Agreement(minutes=len(truth))

    def problem(text: str) -> None:
        if len(ag.problems) < 50:
            ag.problems.append(text)

    extra = set(dp) - set(truth)
    extra |= {(a, m) for a, rows in influx.items() for m in rows} - set(truth)
    if extra:
        ag.counts_equal = False
        problem(f"minutes no line fell in: {sorted(extra)[:3]}")
    for (app, m), t in sorted(truth.items()):
        where = f"{app} {data.minute_label(m)}"
        d, i = dp.get((app, m)), influx.get(app, {}).get(m)
        if d is None or i is None:
            ag.counts_equal = False
            problem(f"{where}: drainpipe {d}, InfluxDB {i}")
            continue
        mean = t.sum / t.count
        if not (d.count == i.count == t.count and d.by_class == t.by_class):
            ag.counts_equal = False
            problem(
                f"{where}: counts exact {t.count} {t.by_class}, dp {d.count} {d.by_class}, "
                f"influx {i.count}"
            )
        if not (_close(d.mean, mean, 1e-9) and _close(i.mean, mean, 1e-9)):
            ag.means_equal = False
            problem(f"{where}: mean exact {mean}, dp {d.mean}, influx {i.mean}")
        if i.p95 != t.p95_nearest:
            ag.influx_p95_exact = False
            problem(f"{where}: influx p95 {i.p95}, exact nearest-rank {t.p95_nearest}")
        err = abs(d.p95 - t.p95_lower) / t.p95_lower if t.p95_lower else abs(d.p95)
        ag.max_dp_p95_error = max(ag.max_dp_p95_error, err)
        if not _close(d.p95, t.p95_lower, REL_ERR):
            ag.drainpipe_p95_within = False
            problem(f"{where}: dp p95 {d.p95}, exact at floor(0.95(n-1)) {t.p95_lower}")
        gap = abs(d.p95 - i.p95) / i.p95 if i.p95 else abs(d.p95)
        ag.max_p95_gap = max(ag.max_p95_gap, gap)
        ag.p95_within_each_other += _close(d.p95, i.p95, REL_ERR)
        ag.ranks_differ += t.p95_lower != t.p95_nearest
        ag.same_rank_within += t.p95_lower == t.p95_nearest and _close(d.p95, i.p95, REL_ERR)
        if mtail is not None:
            label = data.minute_label(m)
            by_class = {c: mtail.by_class.get((app, label, c), 0) for c in "12345"}
            by_class = {c: k for c, k in by_class.items() if k}
            if by_class != t.by_class or mtail.hist.get((app, label)) != (t.count, t.sum):
                ag.mtail_counts_equal = False
                problem(
                    f"{where}: mtail {by_class} {mtail.hist.get((app, label))}, exact "
                    f"{t.by_class} {(t.count, t.sum)}"
                )
    return ag
