"""The embedded bus's storage: one segmented, CRC-checked, append-only write-ahead log.

All topic-partitions share one log so that a group commit costs one fdatasync however
many partitions a batch touches (a per-partition file costs one fsync each; see
BENCHMARKS.md, "Figures behind the design"). Every record carries its topic, partition
and per-partition offset, so readers see Kafka's model: offsets count messages of one
partition.

Record layout (little-endian):
    u32 crc32(body) | u32 len(body) | body
    body = u16 len(topic) | u16 partition | i64 offset | u32 len(key) | topic | key | value

Segments are named by the global byte position of their first record and roll at
`segment_bytes`. On open, every segment is scanned: a torn record at the end of the last
segment (a crash mid-write, never acknowledged) is cut off; damage anywhere else stops
the open with an error naming the file and byte, because acknowledged data is there.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
import threading
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from drainpipe.bus import Message, TopicPartition
from drainpipe.clock import SYSTEM, Clock

log = logging.getLogger(__name__)

HEAD = struct.Struct("<II")
BODY = struct.Struct("<HHqI")
SEGMENT_BYTES = 64 * 1024 * 1024
# A partition gets an index entry (offset, position) at most once per this many bytes of
# the whole log, so the index costs 16 bytes x partitions per 16 MB however the bytes are
# shared: ~3 MB for a day at 6,000 lines/s over 64 partitions (44 GB of log). A consumer
# that starts reads at most this much before its first record.
INDEX_EVERY_BYTES = 16 * 1024 * 1024
READ_CHUNK = 4 * 1024 * 1024


class CorruptLog(Exception):
    pass


def encode(topic: str, partition: int, offset: int, key: bytes, value: bytes) -> bytes:
    t = topic.encode()
    body = b"".join((BODY.pack(len(t), partition, offset, len(key)), t, key, value))
    return HEAD.pack(zlib.crc32(body), len(body)) + body


def decode(buf: bytes | memoryview, pos: int) -> tuple[Message, int] | None:
    """The record at pos and the position after it; None if buf holds no whole valid one."""
    if pos + HEAD.size > len(buf):
        return None
    crc, size = HEAD.unpack_from(buf, pos)
    start = pos + HEAD.size
    end = start + size
    if end > len(buf) or size < BODY.size:
        return None
    body = bytes(buf[start:end])
    if zlib.crc32(body) != crc:
        return None
    tlen, partition, offset, klen = BODY.unpack_from(body, 0)
    t0 = BODY.size
    topic = body[t0 : t0 + tlen].decode()
    key = body[t0 + tlen : t0 + tlen + klen]
    value = body[t0 + tlen + klen :]
    return Message(topic, partition, offset, key, value), end


@dataclass
class Segment:
    base: int  # global position of its first byte
    path: Path
    size: int
    last_offsets: dict[TopicPartition, int] = field(default_factory=dict)  # newest per partition

    @property
    def end(self) -> int:
        return self.base + self.size


class Wal:
    """Appends (one writer thread) and reads (any thread) of the shared log."""

    def __init__(
        self,
        directory: Path,
        segment_bytes: int = SEGMENT_BYTES,
        index_every_bytes: int = INDEX_EVERY_BYTES,
        clock: Clock = SYSTEM,
    ) -> None:
        self.dir = directory
        self.clock = clock
        self.segment_bytes = segment_bytes
        self.index_every_bytes = index_every_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self.segments: list[Segment] = []
        self.next_offsets: dict[TopicPartition, int] = {}
        self._index: dict[TopicPartition, tuple[array[int], array[int]]] = {}
        self._last_indexed: dict[TopicPartition, int] = {}
        self._lock = threading.Lock()
        self._recover()
        last = self.segments[-1]
        self._fd = os.open(last.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.end = last.end  # durable end: readers never read past it
        self.broken: str | None = None

    # -- recovery ---------------------------------------------------------------------
    def _recover(self) -> None:
        paths = sorted(self.dir.glob("*.wal"))
        if not paths:
            path = self.dir / f"{0:020d}.wal"
            path.touch()
            self._fsync_dir()
            self.segments.append(Segment(0, path, 0))
            return
        for i, path in enumerate(paths):
            base = int(path.stem)
            size = path.stat().st_size
            seg = Segment(base, path, size)
            good = self._scan(seg)
            if good < size:
                if i != len(paths) - 1:
                    raise CorruptLog(
                        f"{path}: record at byte {good} is damaged and later segments exist; "
                        f"acknowledged data may be affected. Move {path} and later segments "
                        "aside to start without them."
                    )
                log.warning(
                    "wal.torn_tail_truncated",
                    extra={"path": str(path), "at_byte": good, "bytes_cut": size - good},
                )
                with open(path, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
                seg.size = good
            self.segments.append(seg)

    def _scan(self, seg: Segment) -> int:
        """Index every record of seg; return the size of its valid prefix."""
        pos = 0
        for msg, at, nxt in self._iter_file(seg.path, 0, seg.size):
            self._note(seg, msg.topic, msg.partition, msg.offset, seg.base + at)
            pos = nxt
        return pos

    @staticmethod
    def _iter_file(path: Path, start: int, stop: int) -> Iterator[tuple[Message, int, int]]:
        with open(path, "rb") as f:
            f.seek(start)
            buf = b""
            base = start
            while base + len(buf) < stop or buf:
                chunk = f.read(min(READ_CHUNK, stop - base - len(buf)))
                buf += chunk
                pos = 0
                while True:
                    got = decode(buf, pos)
                    if got is None:
                        break
                    msg, nxt = got
                    yield msg, base + pos, base + nxt
                    pos = nxt
                buf = buf[pos:]
                base += pos
                if not chunk:
                    return

    def _note(self, seg: Segment, topic: str, partition: int, offset: int, pos: int) -> None:
        tp = (topic, partition)
        self.next_offsets[tp] = offset + 1
        seg.last_offsets[tp] = offset
        last = self._last_indexed.get(tp)
        if last is None or pos - last >= self.index_every_bytes:
            with self._lock:  # readers bisect the index, retention cuts it
                offs, poss = self._index.setdefault(tp, (array("q"), array("q")))
                offs.append(offset)
                poss.append(pos)
            self._last_indexed[tp] = pos

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- writing (one thread) ---------------------------------------------------------
    def assign(self, tp: TopicPartition) -> int:
        """Next offset of tp; the caller must append it (the writer owns offsets)."""
        off = self.next_offsets.get(tp, 0)
        self.next_offsets[tp] = off + 1
        return off

    def append(self, records: list[tuple[TopicPartition, int, bytes]]) -> None:
        """Write encoded records and fdatasync; on failure nothing of them stays."""
        if self.broken is not None:
            raise OSError(f"the log is unusable until restarted: {self.broken}")
        seg = self.segments[-1]
        if seg.size >= self.segment_bytes:
            seg = self._roll()
        data = b"".join(r[2] for r in records)
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            os.fdatasync(self._fd)
        except OSError:
            for tp, offset, _ in records:
                if self.next_offsets.get(tp, 0) > offset:
                    self.next_offsets[tp] = offset
            try:
                os.ftruncate(self._fd, seg.size)
            except OSError as exc:
                # Appending after a partial record would hide everything written later.
                self.broken = f"{seg.path}: could not cut a failed write back: {exc}"
            raise
        pos = seg.end
        for tp, offset, raw in records:
            self._note(seg, tp[0], tp[1], offset, pos)
            pos += len(raw)
        seg.size += len(data)
        self.end = seg.end

    def _roll(self) -> Segment:
        base = self.segments[-1].end
        path = self.dir / f"{base:020d}.wal"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fsync_dir()
        # A closed segment's file time is when it was closed, by the pipeline's clock:
        # retention goes by it, and must agree with the clock that judges its age.
        closed_ns = self.clock.now_ms() * 1_000_000
        os.utime(self._fd, ns=(closed_ns, closed_ns))
        os.close(self._fd)
        self._fd = fd
        seg = Segment(base, path, 0)
        with self._lock:
            self.segments.append(seg)
        return seg

    def close(self) -> None:
        os.close(self._fd)

    def drop_oldest(self, deletable: Callable[[Segment], bool]) -> list[Path]:
        """Delete the oldest closed segments while `deletable` says yes; never the active one."""
        dropped: list[Path] = []
        while True:
            with self._lock:
                if len(self.segments) < 2 or not deletable(self.segments[0]):
                    break
                seg = self.segments.pop(0)
                first = self.segments[0].base
                for offs, poss in self._index.values():
                    cut = bisect.bisect_left(poss, first)
                    del offs[:cut], poss[:cut]
            seg.path.unlink()
            dropped.append(seg.path)
        if dropped:
            self._fsync_dir()
        return dropped

    # -- reading (any thread) ---------------------------------------------------------
    def locate(self, tp: TopicPartition, offset: int) -> int:
        """A global position at or before the record (tp, offset)."""
        with self._lock:
            first = self.segments[0].base
            offs, poss = self._index.get(tp, (array("q"), array("q")))
            i = bisect.bisect_right(offs, offset) - 1
            return max(poss[i], first) if i >= 0 else first

    def read(self, pos: int, max_bytes: int = READ_CHUNK) -> tuple[list[Message], int]:
        """Whole records from pos, up to the durable end; and where to read next."""
        end = self.end
        if pos >= end:
            return [], pos
        with self._lock:
            bases = [s.base for s in self.segments]
            i = bisect.bisect_right(bases, pos) - 1
            seg = self.segments[max(i, 0)]
        if pos < seg.base:
            pos = seg.base
        stop = min(seg.end, end, pos + max_bytes)
        with open(seg.path, "rb") as f:
            f.seek(pos - seg.base)
            buf = f.read(stop - pos)
        out: list[Message] = []
        at = 0
        while True:
            got = decode(buf, at)
            if got is None:
                break
            out.append(got[0])
            at = got[1]
        if at == 0 and buf:
            (_, size) = HEAD.unpack_from(buf, 0)
            if HEAD.size + size > len(buf) and pos + HEAD.size + size <= end:
                return self.read(pos, HEAD.size + size)  # one record longer than the chunk
            raise CorruptLog(f"{seg.path}: damaged record at byte {pos - seg.base}")
        nxt = pos + at
        if at == len(buf) and nxt == seg.end and seg is not self.segments[-1]:
            nxt = seg.end  # next segment starts here
        return out, nxt
