"""Per-app series limits: an app with endless process types or metric names hurts no other."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from drainpipe import codec
from drainpipe.clock import FixedClock
from drainpipe.config import Config
from drainpipe.ingest.acceptor import LocalAcceptor
from drainpipe.ingest.drain import Ingress
from drainpipe.ingest.limits import CUSTOM_NAME, IDLE_MS, PROCESS_TYPE, SeriesLimits
from drainpipe.model import CUSTOM, ROUTER
from drainpipe.service import http
from tests.conftest import FIXED_NOW_MS
from tests.ingest.test_drain import Drain
from tests.support import drains


def test_names_in_use_take_the_places_and_idle_ones_free_them() -> None:
    limits = SeriesLimits(max_process_types=2, max_custom_names=1)
    t = FIXED_NOW_MS
    assert limits.admit("a", PROCESS_TYPE, "web", t)
    assert limits.admit("a", PROCESS_TYPE, "worker", t)
    assert not limits.admit("a", PROCESS_TYPE, "clock", t)
    assert limits.admit("a", PROCESS_TYPE, "web", t + 1)  # in use: always admitted
    assert limits.admit("b", PROCESS_TYPE, "clock", t)  # each app has its own places
    assert limits.admit("a", CUSTOM_NAME, "db", t)  # and each kind
    limits.admit("a", PROCESS_TYPE, "web", t + IDLE_MS)
    assert not limits.admit("a", PROCESS_TYPE, "clock", t + IDLE_MS)  # worker idle < 1 h
    # Idle names are swept at most once a minute, so a full app costs little per name.
    assert not limits.admit("a", PROCESS_TYPE, "clock", t + IDLE_MS + 1)
    assert limits.admit("a", PROCESS_TYPE, "clock", t + IDLE_MS + 60_000)  # worker idle > 1 h
    assert not limits.admit("a", PROCESS_TYPE, "worker", t + IDLE_MS + 60_001)


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 10 * 60_000)), max_size=300))
def test_never_more_names_than_the_limit_and_a_name_in_use_is_never_refused(
    uses: list[tuple[int, int]],
) -> None:
    limits = SeriesLimits(max_process_types=5, idle_ms=60_000)
    t = FIXED_NOW_MS
    last: dict[str, int] = {}
    for name, step in uses:
        t += step // 100
        admitted = limits.admit("a", PROCESS_TYPE, f"p{name}", t)
        if f"p{name}" in last and t - last[f"p{name}"] < 60_000 and last[f"p{name}"] >= 0:
            assert admitted
        if admitted:
            last[f"p{name}"] = t
        assert limits.in_use("a", PROCESS_TYPE) <= 5


def _records(drain: Drain, topic: str) -> Counter[tuple[str, str]]:
    """Rows on the bus by (process type, series name)."""
    out: Counter[tuple[str, str]] = Counter()
    schema = ROUTER if topic == ROUTER.topic else CUSTOM
    for m in drain.bus.tail(topic):
        _, pt, cols, series, _ = codec.decode_series(schema, m.value)
        out[pt, series] += len(cols["ts_ms"])
    return out


def test_an_app_over_its_limits_loses_only_its_new_names_and_not_another_apps(
    tmp_path: Path,
) -> None:
    drain = Drain(tmp_path)
    try:
        config = replace(Config(), max_process_types=3, max_custom_names=2)
        other = drain.registry.create("blog")
        acceptor = LocalAcceptor(drain.bus.producer())
        clock = FixedClock(FIXED_NOW_MS)
        ingress = Ingress(drain.registry, acceptor, drain.metrics, config, clock)
        drain.asgi = http.app(drain.metrics, ingress)
        t = FIXED_NOW_MS - 60_000
        noisy = [drains.router(t + i, 5, 200, dyno=f"run{i}.1") for i in range(10)]
        noisy += [
            f"<190>1 2026-11-18T15:59:00.{i:03d}+00:00 host app web.1 - count#req.{i}=1\n"
            for i in range(5)
        ]
        assert drain.post(drains.body(noisy), len(noisy)).status_code == 204
        quiet = [drains.router(t + i, 5, 200, dyno=f"w{i}.1") for i in range(3)]
        drain.app = other
        assert drain.post(drains.body(quiet), len(quiet)).status_code == 204
        router = _records(drain, ROUTER.topic)
        assert sorted(router) == [
            ("run0", ""),
            ("run1", ""),
            ("run2", ""),
            ("w0", ""),
            ("w1", ""),
            ("w2", ""),
        ]
        # web was the app's 4th process type: its custom lines went with it. What
        # remains is the app's own count of what it lost (one row, of 12).
        assert _records(drain, CUSTOM.topic) == Counter({("", "@skipped.process_type_limit"): 1})
        metrics = drain.metrics.render().decode()
        assert 'drainpipe_series_limited_total{kind="process_type"} 12.0' in metrics
    finally:
        drain.close()


def test_custom_names_over_the_limit_are_dropped_and_counted(tmp_path: Path) -> None:
    drain = Drain(tmp_path)
    try:
        config = replace(Config(), max_custom_names=2)
        acceptor = LocalAcceptor(drain.bus.producer())
        ingress = Ingress(drain.registry, acceptor, drain.metrics, config, FixedClock(FIXED_NOW_MS))
        drain.asgi = http.app(drain.metrics, ingress)
        lines = [
            f"<190>1 2026-11-18T15:59:00.{i:03d}+00:00 host app web.1 - "
            f"measure#q{i % 4}=1ms count#q0=1\n"
            for i in range(8)
        ]
        assert drain.post(drains.body(lines), len(lines)).status_code == 204
        assert _records(drain, CUSTOM.topic) == Counter(
            {("web", "q0"): 10, ("web", "q1"): 2, ("", "@skipped.custom_name_limit"): 1}
        )
        metrics = drain.metrics.render().decode()
        assert 'drainpipe_series_limited_total{kind="custom_name"} 4.0' in metrics
    finally:
        drain.close()
