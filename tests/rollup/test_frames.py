"""A retried drain frame accepted by two ingress processes reaches the rollup twice:
its second copy is not counted, also across a rollup restart; batches without a frame
id (an older ingress's) count as they come."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from drainpipe import codec
from drainpipe.bus import OutRecord
from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.ingest import records
from drainpipe.model import MINUTE_MS, ROUTER
from drainpipe.rollup.worker import RollupWorker
from drainpipe.telemetry.metrics import SelfMetrics
from tests.support import drains

T0 = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS


def request(frame_id: str, n: int, at_ms: int) -> list[OutRecord]:
    lines = [drains.router(at_ms + i, 5, 200).encode() for i in range(n)]
    return records.build("shop", lines, at_ms + 1000, 300_000, frame_id=frame_id).records


def counted(bus: EmbeddedBus) -> dict[int, int]:
    """Requests per minute in the newest version of each router summary."""
    newest: dict[int, int] = {}
    for m in bus.tail(ROUTER.summary_topic):
        s = codec.decode_summary(m.value)
        if s.period_s == 60:
            newest[s.start_ms] = max(newest.get(s.start_ms, 0), s.n)
    return newest


def run_once(bus: EmbeddedBus, metrics: SelfMetrics, seconds: float = 1.0) -> None:
    worker = RollupWorker(bus, metrics, flush_interval_s=0.05, lateness_s=300)
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,))
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join(10)


def test_a_second_copy_of_a_frame_is_not_counted_also_after_a_restart(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "bus", 1)
    metrics = SelfMetrics()
    try:
        send = bus.producer().send
        send(request("frame-a", 3, T0)).result()
        send(request("frame-b", 2, T0)).result()
        send(request("frame-a", 3, T0)).result()  # the retry, via another ingress
        run_once(bus, metrics)
        assert counted(bus) == {T0: 5}
        send(request("frame-b", 2, T0)).result()  # again, after the rollup restarted
        send(request("", 4, T0)).result()  # no frame id: counted
        send(request("", 4, T0)).result()  # and again: nothing tells them apart
        run_once(bus, metrics)
        assert counted(bus) == {T0: 13}
        text = metrics.render().decode()
        # 3: the restarted rollup reads the first retry again from its commit, and
        # drops it again.
        assert "drainpipe_rollup_duplicate_batches_total 3.0" in text
    finally:
        bus.close()


def test_frames_repeat_only_at_another_offset_and_are_forgotten_when_too_old() -> None:
    from drainpipe.rollup.frames import Frames

    frames = Frames()
    tp = (ROUTER.topic, 0)
    key = (ROUTER.topic, "shop", "web", "", "f1")
    assert not frames.repeated(tp, 10, key, T0)
    assert not frames.repeated(tp, 10, key, T0)  # the same message read again: not a repeat
    assert frames.repeated(tp, 11, key, T0)
    assert not frames.repeated((ROUTER.topic, 1), 11, key, T0)  # another partition's own
    frames.forget_before(tp, T0)  # rows at T0 may still count
    assert frames.repeated(tp, 12, key, T0)
    frames.forget_before(tp, T0 + 1)
    assert not frames.repeated(tp, 12, key, T0) and len(frames) == 2
    frames.revoke(tp)
    assert len(frames) == 1
