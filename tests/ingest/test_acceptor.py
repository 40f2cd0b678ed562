"""Exactly-once acceptance of drain requests by Logplex-Frame-Id, on a real embedded bus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drainpipe.bus import BusUnavailable, OutRecord
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.ingest.acceptor import LocalAcceptor, recent_frames
from drainpipe.model import FRAMES_TOPIC

REC = [OutRecord("ROUTER_REQUESTS.v1", b"app|web", b"batch")]


def topic_count(bus: EmbeddedBus, topic: str) -> int:
    return len(bus.tail(topic))


def test_a_retried_frame_is_appended_once(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path)
    acc = LocalAcceptor(bus.producer())
    assert acc.submit("app", "f1", REC).result(5) is True
    assert acc.submit("app", "f1", REC).result(5) is False
    assert acc.submit("other-app", "f1", REC).result(5) is True  # ids are per app
    assert acc.submit("app", None, REC).result(5) is True  # no id: no dedup
    assert topic_count(bus, "ROUTER_REQUESTS.v1") == 3
    assert topic_count(bus, FRAMES_TOPIC) == 2
    bus.close()


def test_concurrent_copies_of_a_frame_are_appended_once(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path)
    acc = LocalAcceptor(bus.producer())
    futures = [acc.submit("app", "same", REC) for _ in range(20)]
    assert sorted(f.result(5) for f in futures) == [False] * 19 + [True]
    assert topic_count(bus, "ROUTER_REQUESTS.v1") == 1
    bus.close()


def test_a_copy_waiting_on_a_failed_first_copy_is_appended(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path)
    acc = LocalAcceptor(bus.producer())
    os.close(bus.wal._fd)
    bus.wal._fd = os.open(os.devnull, os.O_RDONLY)  # the next write fails
    first = acc.submit("app", "f1", REC)
    with pytest.raises(BusUnavailable):
        first.result(5)
    bus.close()
    bus = EmbeddedBus(tmp_path)  # a restart repairs the log
    acc = LocalAcceptor(bus.producer(), recent_frames(bus.tail(FRAMES_TOPIC)))
    assert acc.submit("app", "f1", REC).result(5) is True  # the failed copy left no id
    bus.close()


def test_ids_accepted_before_a_restart_are_still_recognised(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path)
    LocalAcceptor(bus.producer()).submit("app", "f1", REC).result(5)
    bus.close()
    bus = EmbeddedBus(tmp_path)
    acc = LocalAcceptor(bus.producer(), recent_frames(bus.tail(FRAMES_TOPIC)))
    assert acc.submit("app", "f1", REC).result(5) is False
    bus.close()
