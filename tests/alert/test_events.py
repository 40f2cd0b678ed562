"""The events a notice's text mentions (deploys, restarts) are kept in the alerts
database, so a restarted stage still has the ones of the window it judges."""

from __future__ import annotations

from drainpipe import codec
from drainpipe.alert import manage
from drainpipe.alert.worker import AlertWorker
from drainpipe.bus import Message
from drainpipe.clock import FixedClock
from drainpipe.model import EVENTS_TOPIC
from drainpipe.model.messages import EventBatch, EventRecord
from tests.alert.test_worker import T0, Outbox, outbox

__all__ = ["outbox"]  # the fixture


def test_events_for_a_notices_text_survive_a_restart_and_are_kept_once(outbox: Outbox) -> None:
    app = outbox.registry.by_name("shop")
    assert app is not None
    rule = manage.make(outbox.registry, "shop", "load", 4, process_type="web")
    deploy = EventRecord(T0 + 5_000, "", "app", "deploy", "Deploy 4f2a by ann", {})
    other = EventRecord(T0 + 6_000, "worker", "worker.1", "restart", "Restarting", {})
    batch = codec.encode_events(EventBatch(app.id, "", [deploy, other]))
    message = Message(EVENTS_TOPIC, 0, 0, b"", batch)
    first = AlertWorker(outbox.bus, outbox.state, FixedClock(T0 + 60_000))
    first._take([message])
    first._take([message])  # read again, as after a restart before its commit
    again = AlertWorker(outbox.bus, outbox.state, FixedClock(T0 + 60_000))  # restarted past it
    (seen,) = again._recent_events(rule, T0, T0 + 60_000)
    assert (seen["kind"], seen["text"], seen["t"]) == (
        "deploy", "Deploy 4f2a by ann", "2026-11-18T16:00:05Z",
    )  # fmt: skip
