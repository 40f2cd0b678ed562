"""The embedded write-ahead log: recovery, segments, and what a failed write leaves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drainpipe.bus import BusUnavailable, OutRecord, Position, TopicPartition
from drainpipe.bus.embedded import BusLocked, EmbeddedBus, EmbeddedConsumer
from drainpipe.bus.wal import CorruptLog, Wal, encode
from drainpipe.clock import FixedClock


def write(wal: Wal, topic: str, partition: int, values: list[bytes]) -> None:
    recs = []
    for v in values:
        off = wal.assign((topic, partition))
        recs.append(((topic, partition), off, encode(topic, partition, off, b"k", v)))
    wal.append(recs)


def read_all(wal: Wal) -> list[tuple[str, int, int, bytes]]:
    pos = 0
    out: list[tuple[str, int, int, bytes]] = []
    while pos < wal.end:
        msgs, pos = wal.read(pos)
        out.extend((m.topic, m.partition, m.offset, m.value) for m in msgs)
    return out


def test_records_survive_reopening_with_their_offsets(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    write(wal, "A.v1", 0, [b"a0", b"a1"])
    write(wal, "B.v1", 3, [b"b0"])
    wal.close()
    again = Wal(tmp_path)
    assert read_all(again) == [("A.v1", 0, 0, b"a0"), ("A.v1", 0, 1, b"a1"), ("B.v1", 3, 0, b"b0")]
    assert again.next_offsets == {("A.v1", 0): 2, ("B.v1", 3): 1}


@pytest.mark.parametrize("cut", [1, 5, 9, 20])  # inside the header, the body, the last byte
def test_a_torn_last_record_is_cut_off_and_earlier_ones_kept(tmp_path: Path, cut: int) -> None:
    wal = Wal(tmp_path)
    write(wal, "A.v1", 0, [b"first", b"second-record"])
    wal.close()
    seg = next(tmp_path.glob("*.wal"))
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size - cut)
    again = Wal(tmp_path)
    assert read_all(again) == [("A.v1", 0, 0, b"first")]
    write(again, "A.v1", 0, [b"next"])  # the offset of the lost record is used again
    assert read_all(again)[-1] == ("A.v1", 0, 1, b"next")


def test_damage_in_an_older_segment_stops_the_open_and_names_the_file(tmp_path: Path) -> None:
    wal = Wal(tmp_path, segment_bytes=64)
    for i in range(4):
        write(wal, "A.v1", 0, [b"x" * 80 + bytes([i])])
    wal.close()
    first = sorted(tmp_path.glob("*.wal"))[0]
    data = bytearray(first.read_bytes())
    data[30] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(CorruptLog, match=first.name):
        Wal(tmp_path)


def test_segments_roll_and_reads_cross_them_in_order(tmp_path: Path) -> None:
    wal = Wal(tmp_path, segment_bytes=200)
    values = [bytes([i]) * 100 for i in range(7)]
    for v in values:
        write(wal, "A.v1", 1, [v])
    assert len(list(tmp_path.glob("*.wal"))) > 2
    assert [r[3] for r in read_all(wal)] == values
    start = wal.locate(("A.v1", 1), 5)
    msgs, _ = wal.read(start)
    assert msgs[0].offset <= 5


def test_a_failed_write_leaves_nothing_and_reuses_no_offset(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    write(wal, "A.v1", 0, [b"ok"])
    os.close(wal._fd)
    wal._fd = os.open(os.devnull, os.O_RDONLY)  # writes now fail with EBADF
    with pytest.raises(OSError):
        write(wal, "A.v1", 0, [b"lost"])
    assert wal.next_offsets[("A.v1", 0)] == 1
    assert read_all(wal) == [("A.v1", 0, 0, b"ok")]
    with pytest.raises(OSError, match="unusable until restarted"):
        write(wal, "A.v1", 0, [b"after"])  # the cut-back failed too (read-only fd)
    wal.close()
    assert read_all(Wal(tmp_path)) == [("A.v1", 0, 0, b"ok")]


def test_the_bus_answers_unavailable_when_the_disk_write_fails(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path)
    os.close(bus.wal._fd)
    bus.wal._fd = os.open(os.devnull, os.O_RDONLY)
    fut = bus.producer().send([OutRecord("A.v1", b"o|web", b"v")])
    with pytest.raises(BusUnavailable, match="could not write"):
        fut.result(timeout=5)
    with pytest.raises(BusUnavailable, match="unusable until restarted"):
        bus.producer().send([OutRecord("A.v1", b"o|web", b"v2")]).result(timeout=5)
    bus.close()
    bus = EmbeddedBus(tmp_path)
    bus.producer().send([OutRecord("A.v1", b"o|web", b"v3")]).result(timeout=5)
    bus.close()


def test_partition_count_is_fixed_when_the_directory_is_created(tmp_path: Path) -> None:
    EmbeddedBus(tmp_path, partitions=4).close()
    bus = EmbeddedBus(tmp_path)
    assert bus.partitions == 4
    bus.close()
    with pytest.raises(ValueError, match="fixed when the data directory is created"):
        EmbeddedBus(tmp_path, partitions=8)


def test_a_closed_bus_refuses_sends(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path)
    bus.close()
    with pytest.raises(BusUnavailable, match="closed"):
        bus.producer().send([OutRecord("A.v1", b"o|web", b"v")]).result(timeout=5)


def test_consumers_resume_at_their_committed_position(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path, partitions=1)
    bus.producer().send([OutRecord("A.v1", b"o|web", bytes([i])) for i in range(5)]).result()
    c = bus.consumer("g")
    seen: dict[TopicPartition, Position] = {}
    c.subscribe(["A.v1"], seen.update)
    got = c.poll(3, 1.0)
    assert [m.value for m in got] == [b"\x00", b"\x01", b"\x02"]
    c.commit({("A.v1", 0): Position(3, "wm=1")})
    bus.close()
    bus = EmbeddedBus(tmp_path)
    c = bus.consumer("g")
    seen = {}
    c.subscribe(["A.v1"], seen.update)
    assert seen == {("A.v1", 0): Position(3, "wm=1")}
    assert [m.value for m in c.poll(10, 1.0)] == [b"\x03", b"\x04"]
    bus.close()


def test_a_second_process_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path)
    with pytest.raises(BusLocked, match=f"pid {os.getpid()}"):
        EmbeddedBus(tmp_path)
    bus.close()
    EmbeddedBus(tmp_path).close()  # free again once closed


def _drain(c: EmbeddedConsumer) -> list[int]:
    out: list[int] = []
    while batch := c.poll(100, 0.2):
        out.extend(m.value[0] for m in batch)
    return out


def _fill(bus: EmbeddedBus, n: int) -> None:
    for i in range(n):
        bus.producer().send([OutRecord("A.v1", b"o|web", bytes([i]) * 100)]).result()


def test_retention_drops_old_segments_only_once_every_group_is_past_them(
    tmp_path: Path, clock: FixedClock
) -> None:
    bus = EmbeddedBus(tmp_path, partitions=1, clock=clock)
    bus.wal.segment_bytes = 300
    _fill(bus, 9)  # three segments of three records, plus the active one
    segments = len(bus.wal.segments)
    later = clock.now_ms() + 10_000_000
    c = bus.consumer("g")
    c.subscribe(["A.v1"], lambda _: None)
    assert bus.enforce_retention(3600, now_ms=later) == []  # g has committed nothing yet
    assert _drain(c) == list(range(9))
    c.commit({("A.v1", 0): Position(4)})  # past the first segment (offsets 0-2) only
    assert bus.enforce_retention(3600) == []  # too young
    dropped = bus.enforce_retention(3600, now_ms=later)
    assert len(dropped) == 1 and len(bus.wal.segments) == segments - 1
    fresh = bus.consumer("g")
    fresh.subscribe(["A.v1"], lambda _: None)
    assert _drain(fresh) == list(range(4, 9))
    bus.close()
    again = EmbeddedBus(tmp_path)
    assert again.wal.next_offsets[("A.v1", 0)] == 9  # offsets continue after a drop
    again.close()


def test_topics_no_group_reads_are_dropped_by_age_alone(tmp_path: Path, clock: FixedClock) -> None:
    bus = EmbeddedBus(tmp_path, partitions=1, clock=clock)
    bus.wal.segment_bytes = 300
    _fill(bus, 6)  # two segments of three records; the second is the active one
    assert bus.enforce_retention(3600) == []  # closed just now, by the bus's clock
    clock.advance(3_601_000)
    assert len(bus.enforce_retention(3600)) == 1
    assert len(bus.wal.segments) == 1
    bus.close()


def test_the_index_grows_with_the_log_not_with_partitions_times_the_log(tmp_path: Path) -> None:
    """Each partition gets at most one entry per `index_every_bytes` of the whole log, and
    `locate` still lands at most that far (plus one record) before any record."""
    every = 4096
    wal = Wal(tmp_path, segment_bytes=64 * 1024, index_every_bytes=every)
    partitions = 16
    where: dict[tuple[str, int, int], int] = {}
    for i in range(3000):
        p = i % partitions if i % 7 else 0  # partition 0 busier than the rest
        pos = wal.end
        write(wal, "A.v1", p, [bytes([i % 256]) * 40])
        where[("A.v1", p, wal.next_offsets[("A.v1", p)] - 1)] = pos
    total = wal.end
    for reopened in (wal, Wal(tmp_path, segment_bytes=64 * 1024, index_every_bytes=every)):
        for p in range(partitions):
            offs, poss = reopened._index[("A.v1", p)]
            assert len(offs) == len(poss) <= total // every + 1
        for (topic, p, off), pos in where.items():
            at = reopened.locate((topic, p), off)
            assert pos - every - 100 <= at <= pos
            seen = []
            while at <= pos:
                msgs, at = reopened.read(at, 512)
                seen += [(m.partition, m.offset) for m in msgs]
            assert (p, off) in seen
