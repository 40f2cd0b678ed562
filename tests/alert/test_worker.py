"""Alerts in the pipeline of `up`, in process, on a clock the test moves: router lines in,
signed webhook notices out to a real local receiver, across a restart."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from drainpipe.alert import manage
from drainpipe.alert.evaluate import MINUTE_MS, Notice, State
from drainpipe.alert.notify import iso
from drainpipe.alert.rules import Rule
from drainpipe.alert.state import AlertState
from drainpipe.alert.worker import AlertWorker
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.clock import FixedClock
from drainpipe.config import Config
from drainpipe.service.pipeline import Pipeline
from drainpipe.store.apps import AppRegistry, sqlite_registry
from tests.service.test_health import _call, _wait
from tests.support import drains

T0 = 1_795_017_600_000  # a minute's start
HERE = (ipaddress.ip_network("127.0.0.0/8"),)  # the receivers' network, allowed


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps what it was sent."""

    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.status = status
        self.delay_s = delay_s
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(outer.delay_s)
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(b) for _, b in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@dataclass
class Outbox:
    """An alerts database, bus and registry with the app `shop`, for the sender alone."""

    bus: EmbeddedBus
    state: AlertState
    registry: AppRegistry

    def firing(self, url: str) -> Rule:
        """A rule on `url` whose firing notice at T0 waits in the outbox."""
        rule = manage.make(self.registry, "shop", "load", 4, webhook=url, nets=HERE)
        self.state.add(rule, T0)
        self.state.judged(rule, State(), [Notice("firing", T0, 5.0, 4.0)], [], T0, 0)
        return rule


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(
        EmbeddedBus(tmp_path / "bus", 2),
        AlertState(tmp_path / "alerts.sqlite"),
        sqlite_registry(tmp_path / "apps.sqlite"),
    )
    box.registry.create("shop")
    yield box
    box.state.close()
    box.registry.close()
    box.bus.close()


def start(tmp_path: Path, clock: FixedClock) -> Pipeline:
    config = replace(
        Config(), data_dir=tmp_path, flush_interval_s=0.05, workers=0, alert_delay_s=0,
        alert_allow_nets=("127.0.0.0/8",),
    )  # fmt: skip
    p = Pipeline(config, clock=clock)
    p.start_stages()
    return p


def add_rule(p: Pipeline, receiver: Receiver) -> tuple[str, str]:
    rule = manage.make(
        p.registry, "shop", "latency_p95", 500, sensitivity=5, renotify=5,
        webhook=receiver.url, nets=HERE,
    )  # fmt: skip
    p.alert_state.add(rule, p.clock.now_ms())
    assert rule.webhook_secret is not None
    return rule.id, rule.webhook_secret


def feed(p: Pipeline, drain_secret: str, minute: int, service_ms: int) -> None:
    """Router lines for one minute, the clock half-way through it."""
    assert isinstance(p.clock, FixedClock)
    p.clock.set(T0 + minute * MINUTE_MS + 30_000)
    lines = [drains.router(T0 + minute * MINUTE_MS + i * 100, service_ms, 200) for i in range(50)]
    auth = base64.b64encode(f"d:{drain_secret}".encode()).decode()
    headers = {"Content-Type": "application/logplex-1", "Authorization": f"Basic {auth}"}
    asgi = getattr(p, "_asgi", None) or p.http_app()
    p._asgi = asgi  # type: ignore[attr-defined]
    r: httpx.Response = _call(p, asgi, "POST", "/logs", content=drains.body(lines), headers=headers)
    assert r.status_code == 204


def seen(p: Pipeline, rule_id: str, minute: int) -> bool:
    at = T0 + minute * MINUTE_MS
    return at in p.alert_state.values(rule_id, at, at)


def judged(p: Pipeline, rule_id: str, minute: int) -> bool:
    state = p.alert_state.state(rule_id)
    return state is not None and (state.judged_ms or 0) >= T0 + minute * MINUTE_MS


def test_fires_reminds_and_resolves_with_signed_webhooks_across_a_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    clock = FixedClock(T0)
    p = start(tmp_path, clock)
    app = p.registry.create("shop")
    rule_id, secret = add_rule(p, receiver)
    slow = [900] * 7  # minutes 0-6 over 500 ms
    for minute, service in enumerate(slow):
        feed(p, app.drain_secret, minute, service)
        _wait(lambda m=minute: seen(p, rule_id, m), f"minute {minute} read")
        if minute:
            _wait(lambda m=minute: judged(p, rule_id, m - 1), f"minute {minute - 1} judged")
    _wait(lambda: len(receiver.got) == 1, "the firing notice")
    p.stop()  # a restart: the next process must neither repeat nor miss a notice
    p = start(tmp_path, clock)
    for minute, service in enumerate([900] * 3 + [50] * 5, start=7):
        feed(p, app.drain_secret, minute, service)
        _wait(lambda m=minute: seen(p, rule_id, m), f"minute {minute} read")
        _wait(lambda m=minute: judged(p, rule_id, m - 1), f"minute {minute - 1} judged")
    clock.set(T0 + 15 * MINUTE_MS + 30_000)
    _wait(lambda: judged(p, rule_id, 14), "minute 14 judged")
    _wait(lambda: len(receiver.got) == 3, "reminder and recovery")
    time.sleep(0.5)  # nothing more comes
    p.stop()
    bodies = receiver.bodies()
    assert [(b["state"], b["minute"]) for b in bodies] == [
        ("firing", iso(T0 + 4 * MINUTE_MS)),
        ("reminder", iso(T0 + 9 * MINUTE_MS)),
        ("resolved", iso(T0 + 14 * MINUTE_MS)),
    ]
    for headers, raw in receiver.got:
        want = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        assert headers["x-drainpipe-signature"] == want
        assert headers["x-drainpipe-delivery"].startswith(rule_id)
    first = bodies[0]
    assert first["app"] == "shop" and first["process_type"] == "web"
    assert first["rule_id"] == rule_id and first["metric"] == "latency_p95"
    assert first["threshold"] == 500 and first["value"] == pytest.approx(900, rel=0.01)
    assert first["dashboard_url"].endswith("/apps/shop?window=2h&process_type=web")
    assert bodies[2]["value"] == pytest.approx(50, rel=0.01)
    history = {(n.notice.state, n.notice.minute_ms) for n in _history(tmp_path)}
    assert history == {
        ("firing", T0 + 4 * MINUTE_MS),
        ("reminder", T0 + 9 * MINUTE_MS),
        ("resolved", T0 + 14 * MINUTE_MS),
    }


def _history(tmp_path: Path) -> list[Any]:
    state = AlertState(tmp_path / "alerts.sqlite")
    try:
        return state.history("shop", T0, T0 + 60 * MINUTE_MS)
    finally:
        state.close()


def test_a_receiver_4xx_is_final_and_a_5xx_408_or_429_is_retried(tmp_path: Path) -> None:
    from drainpipe.alert.notify import Final4xx, webhook
    from drainpipe.alert.rules import metric

    refusing, failing, busy = Receiver(403), Receiver(503), Receiver(429)
    try:
        for receiver, error in ((refusing, Final4xx), (failing, Exception), (busy, Exception)):
            rule = Rule("r", "shop", "o", metric("load"), 4, webhook=receiver.url)
            with pytest.raises(error) as raised:
                webhook(rule, {"delivery": "r:test:0:webhook"}, HERE)
            assert isinstance(raised.value, Final4xx) == (receiver is refusing)
    finally:
        refusing.close()
        failing.close()
        busy.close()


def test_a_failing_receiver_is_tried_once_and_then_once_per_backoff_step(outbox: Outbox) -> None:
    from drainpipe.alert import notify

    failing = Receiver(503)
    try:
        outbox.firing(failing.url)
        worker = AlertWorker(outbox.bus, outbox.state, FixedClock(T0), nets=HERE)
        worker._refresh()
        now = T0
        for _ in range(10):
            worker._deliver(now)
            now += 3_600_000  # past any backoff step
        assert len(failing.got) == 1 + len(notify.BACKOFF_S)
        counted = worker.metrics.render().decode()
        assert 'drainpipe_alert_notices_total{channel="webhook",outcome="retried"} 5.0' in counted
        assert 'drainpipe_alert_notices_total{channel="webhook",outcome="given_up"} 1.0' in counted
        (given_up,) = outbox.state.history("shop", T0, T0 + MINUTE_MS)
        assert given_up.sent_ms is None and given_up.error is not None
    finally:
        failing.close()


def test_a_slow_receiver_holds_up_neither_reading_nor_judging(tmp_path: Path) -> None:
    slow = Receiver(delay_s=6.0)
    clock = FixedClock(T0)
    p = start(tmp_path, clock)
    try:
        app = p.registry.create("shop")
        rule = manage.make(
            p.registry, "shop", "latency_p95", 500, sensitivity=1, webhook=slow.url, nets=HERE
        )
        p.alert_state.add(rule, T0)
        feed(p, app.drain_secret, 0, 900)
        _wait(lambda: seen(p, rule.id, 0), "minute 0 read")
        feed(p, app.drain_secret, 1, 900)  # minute 0 is judged: its notice goes out, slowly
        _wait(lambda: judged(p, rule.id, 0), "minute 0 judged")
        started = time.monotonic()
        for minute in (2, 3):
            feed(p, app.drain_secret, minute, 900)
            _wait(lambda m=minute: judged(p, rule.id, m - 1), f"minute {minute - 1} judged")
        assert time.monotonic() - started < 5 and slow.got == []  # the send still waits
        _wait(lambda: len(slow.got) == 1, "the notice, once the receiver answers")
    finally:
        p.stop()
        slow.close()


def test_a_receiver_that_does_not_answer_holds_up_only_its_own_notices(outbox: Outbox) -> None:
    stuck, fine = Receiver(delay_s=8.0), Receiver()
    worker = AlertWorker(outbox.bus, outbox.state, FixedClock(T0), nets=HERE)
    try:
        for receiver in (stuck, stuck, fine):  # the stuck receiver's notices come first
            outbox.firing(receiver.url)
        worker._refresh()
        started = time.monotonic()
        while not fine.got and time.monotonic() - started < 5:
            worker._deliver(T0)
        assert len(fine.got) == 1 and stuck.got == []  # one at a time to the stuck one
        while len(stuck.got) < 2 and time.monotonic() - started < 30:
            worker._deliver(T0)
        assert len(stuck.got) == 2 and len(fine.got) == 1
        history = outbox.state.history("shop", T0, T0 + MINUTE_MS)
        assert all(o.sent_ms is not None for o in history)
    finally:
        worker._pool.shutdown(wait=True)
        stuck.close()
        fine.close()
