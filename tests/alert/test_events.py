"""The events a notice's text mentions (deploys, restarts) are kept in the alerts
database, so a restarted stage still has the ones of the window it judges."""

from __future__ import annotations

from pathlib import Path

from drainpipe import codec
from drainpipe.alert import manage
from drainpipe.alert.state import AlertState
from drainpipe.alert.worker import AlertWorker
from drainpipe.bus import Message
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.clock import FixedClock
from drainpipe.model import EVENTS_TOPIC
from drainpipe.model.messages import EventBatch, EventRecord
from drainpipe.store.apps import sqlite_registry
from tests.alert.test_worker import T0


def test_events_for_a_notices_text_survive_a_restart_and_are_kept_once(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "bus", 2)
    state = AlertState(tmp_path / "alerts.sqlite")
    registry = sqlite_registry(tmp_path / "apps.sqlite")
    try:
        app = registry.create("shop").app
        rule = manage.make(registry, "shop", "load", 4, process_type="web")
        deploy = EventRecord(T0 + 5_000, "", "app", "deploy", "Deploy 4f2a by ann", {})
        other = EventRecord(T0 + 6_000, "worker", "worker.1", "restart", "Restarting", {})
        batch = codec.encode_events(EventBatch(app.id, "", [deploy, other]))
        message = Message(EVENTS_TOPIC, 0, 0, b"", batch)
        first = AlertWorker(bus, state, FixedClock(T0 + 60_000))
        first._take([message])
        first._take([message])  # read again, as after a restart before its commit
        again = AlertWorker(bus, state, FixedClock(T0 + 60_000))  # restarted past it
        (seen,) = again._recent_events(rule, T0, T0 + 60_000)
        assert (seen["kind"], seen["text"], seen["t"]) == (
            "deploy", "Deploy 4f2a by ann", "2026-11-18T16:00:05Z",
        )  # fmt: skip
    finally:
        state.close()
        registry.close()
        bus.close()
