"""The embedded bus: group-committed appends to the shared WAL, and consumer groups.

One writer thread drains every pending `send`, writes them with one write and one
fdatasync, then completes their futures: concurrent drain requests share an fsync, so
a durable ack costs one fsync per group, not per request. Consumer positions are JSON
files replaced atomically (write, fsync, rename, fsync the directory).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path

from drainpipe.bus import (
    BusUnavailable,
    Message,
    OnAssign,
    OnRevoke,
    OutRecord,
    Position,
    TopicPartition,
)
from drainpipe.bus.wal import Segment, Wal, encode
from drainpipe.clock import SYSTEM, Clock
from drainpipe.model import partition_for

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 8
MAX_PENDING_BYTES = 256 * 1024 * 1024
MAX_GROUP_BYTES = 16 * 1024 * 1024

_Pending = tuple[Sequence[OutRecord], "Future[None]", int]


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BusLocked(RuntimeError):
    pass


def _lock(path: Path) -> int:
    """Hold an exclusive lock on the bus for this process's life: one writer per log."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise BusLocked(
            f"{path.parent} is in use by another drainpipe process (pid {holder}); stop it, "
            "or give this one another --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


class EmbeddedBus:
    """A bus in the data directory: `<dir>/wal/*.wal` and `<dir>/groups/*.json`."""

    def __init__(
        self, directory: Path, partitions: int | None = None, clock: Clock = SYSTEM
    ) -> None:
        self.dir = directory
        self.clock = clock  # segment ages for retention
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(directory / "LOCK")
        try:
            self.partitions = self._partitions(partitions)
            (directory / "groups").mkdir(exist_ok=True)
            self.wal = Wal(directory / "wal", clock=clock)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._pending_bytes = 0
        self._pending_lock = threading.Lock()
        self.appended = threading.Condition()
        self._closed = False
        self._groups_lock = threading.Lock()
        self._writer = threading.Thread(target=self._write_loop, name="bus-writer", daemon=True)
        self._writer.start()

    def _partitions(self, asked: int | None) -> int:
        meta = self.dir / "bus.json"
        if meta.exists():
            have = int(json.loads(meta.read_text())["partitions"])
            if asked is not None and asked != have:
                raise ValueError(
                    f"{meta} says the bus has {have} partitions but {asked} were asked for; "
                    "partition counts are fixed when the data directory is created "
                    "(keys would move), so drop --partitions or use a new data directory"
                )
            return have
        n = asked or DEFAULT_PARTITIONS
        if not 1 <= n <= 4096:
            raise ValueError(f"partitions must be between 1 and 4096, not {n}")
        _atomic_write(meta, json.dumps({"partitions": n}).encode())
        return n

    # -- producing --------------------------------------------------------------------
    def producer(self) -> EmbeddedProducer:
        return EmbeddedProducer(self)

    def submit(self, records: Sequence[OutRecord]) -> Future[None]:
        fut: Future[None] = Future()
        size = sum(len(r.key) + len(r.value) + 64 for r in records)
        with self._pending_lock:
            if self._closed:
                fut.set_exception(BusUnavailable("the embedded bus is closed"))
                return fut
            if self._pending_bytes + size > MAX_PENDING_BYTES:
                fut.set_exception(
                    BusUnavailable(
                        f"the embedded bus has {self._pending_bytes} bytes waiting for disk; "
                        "try again shortly"
                    )
                )
                return fut
            self._pending_bytes += size
        self._queue.put((records, fut, size))
        return fut

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            total = first[2]
            while total < MAX_GROUP_BYTES:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                group.append(nxt)
                total += nxt[2]
            self._write_group(group, total)

    def _write_group(self, group: list[_Pending], total: int) -> None:
        encoded: list[tuple[TopicPartition, int, bytes]] = []
        for records, _, _ in group:
            for r in records:
                tp = (r.topic, partition_for(r.key, self.partitions))
                off = self.wal.assign(tp)
                encoded.append((tp, off, encode(tp[0], tp[1], off, r.key, r.value)))
        try:
            self.wal.append(encoded)
            error: Exception | None = None
        except OSError as exc:
            log.error("bus.write_failed", extra={"error": str(exc)})
            error = BusUnavailable(f"the embedded bus could not write to disk: {exc}")
        with self._pending_lock:
            self._pending_bytes -= total
        for _, fut, _ in group:
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
        with self.appended:
            self.appended.notify_all()

    def tail(self, topic: str, max_bytes: int = 64 * 1024 * 1024) -> list[Message]:
        """Messages of topic in at least the last max_bytes of the log, oldest first.

        Reading starts at the base of the segment holding that point: a record boundary.
        """
        want = self.wal.end - max_bytes
        with self.wal._lock:
            bases = [seg.base for seg in self.wal.segments if seg.base <= max(want, 0)]
            pos = bases[-1] if bases else self.wal.segments[0].base
        out: list[Message] = []
        while pos < self.wal.end:
            msgs, nxt = self.wal.read(pos)
            out.extend(m for m in msgs if m.topic == topic)
            if nxt == pos:
                break
            pos = nxt
        return out

    def enforce_retention(self, max_age_s: float, now_ms: int | None = None) -> list[Path]:
        """Delete the oldest segments older than max_age_s that every consumer group is past.

        A segment's age is the time it was closed (its file time, set by the log's clock).
        A group holds back a segment if it consumes any of its topics and has not committed
        beyond that segment's newest offset of the partition; topics no group consumes
        (drain frame ids) go by age alone.
        """
        now = (self.clock.now_ms() if now_ms is None else now_ms) / 1000
        groups = [self.load_positions(p.stem) for p in (self.dir / "groups").glob("*.json")]
        consumed = [{tp[0] for tp in g} for g in groups]

        def deletable(seg: Segment) -> bool:
            if now - seg.path.stat().st_mtime < max_age_s:
                return False
            for tp, last in seg.last_offsets.items():
                for positions, topics in zip(groups, consumed, strict=True):
                    if tp[0] in topics:
                        pos = positions.get(tp)
                        if pos is None or pos.offset <= last:
                            return False
            return True

        dropped = self.wal.drop_oldest(deletable)
        if dropped:
            log.info("bus.retention_dropped", extra={"segments": [p.name for p in dropped]})
        return dropped

    # -- consumer groups --------------------------------------------------------------
    def consumer(self, group: str) -> EmbeddedConsumer:
        return EmbeddedConsumer(self, group)

    def _group_path(self, group: str) -> Path:
        if not group.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"consumer group name {group!r} must be letters, digits, - or _")
        return self.dir / "groups" / f"{group}.json"

    def load_positions(self, group: str) -> dict[TopicPartition, Position]:
        path = self._group_path(group)
        if not path.exists():
            return {}
        raw = json.loads(path.read_text())
        out: dict[TopicPartition, Position] = {}
        for name, (offset, metadata) in raw.items():
            topic, _, part = name.rpartition("/")
            out[(topic, int(part))] = Position(int(offset), str(metadata))
        return out

    def store_positions(self, group: str, positions: Mapping[TopicPartition, Position]) -> None:
        with self._groups_lock:
            have = self.load_positions(group)
            for tp, pos in positions.items():
                old = have.get(tp)
                if old is not None and pos.offset < old.offset:
                    raise ValueError(
                        f"group {group}: commit of {tp[0]}[{tp[1]}] at offset {pos.offset} "
                        f"would go back from {old.offset}"
                    )
                have[tp] = pos
            data = {f"{t}/{p}": [pos.offset, pos.metadata] for (t, p), pos in sorted(have.items())}
            _atomic_write(self._group_path(group), json.dumps(data).encode())

    def close(self) -> None:
        with self._pending_lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)
        self._writer.join()
        self.wal.close()
        os.close(self._lock_fd)
        with self.appended:
            self.appended.notify_all()


class EmbeddedProducer:
    def __init__(self, bus: EmbeddedBus) -> None:
        self.bus = bus
        self.partitions = bus.partitions

    def send(self, records: Sequence[OutRecord]) -> Future[None]:
        return self.bus.submit(records)

    def close(self) -> None:
        pass


class EmbeddedConsumer:
    """Reads the shared WAL from the lowest committed position of its partitions."""

    def __init__(self, bus: EmbeddedBus, group: str) -> None:
        self.bus = bus
        self.group = group
        self._next: dict[TopicPartition, int] = {}
        self._topics: frozenset[str] = frozenset()
        self._pos = 0
        self._buffer: list[Message] = []

    def subscribe(
        self, topics: Sequence[str], on_assign: OnAssign, on_revoke: OnRevoke | None = None
    ) -> None:
        committed = self.bus.load_positions(self.group)
        new = {(t, p): Position(0) for t in topics for p in range(self.bus.partitions)}
        if any(tp not in committed for tp in new):
            # Recorded at once, so retention keeps what this group has yet to read.
            self.bus.store_positions(self.group, {**new, **committed})
        assigned = {
            (t, p): committed.get((t, p), Position(0))
            for t in topics
            for p in range(self.bus.partitions)
        }
        self._topics = frozenset(topics)
        self._next = {tp: pos.offset for tp, pos in assigned.items()}
        self._pos = min(self.bus.wal.locate(tp, off) for tp, off in self._next.items())
        on_assign(assigned)

    def poll(self, max_messages: int, timeout_s: float) -> list[Message]:
        deadline = self.bus.clock.monotonic() + timeout_s
        out: list[Message] = []
        while True:
            if not self._buffer:
                self._fill()
            while self._buffer and len(out) < max_messages:
                out.append(self._buffer.pop())
            if out or len(out) >= max_messages:
                return out
            left = deadline - self.bus.clock.monotonic()
            if left <= 0:
                return out
            with self.bus.appended:
                if self.bus.wal.end <= self._pos:
                    self.bus.appended.wait(left)

    def _fill(self) -> None:
        while self._pos < self.bus.wal.end:
            msgs, self._pos = self.bus.wal.read(self._pos)
            kept = []
            for m in msgs:
                if m.topic not in self._topics:
                    continue
                tp = (m.topic, m.partition)
                if m.offset < self._next[tp]:
                    continue
                self._next[tp] = m.offset + 1
                kept.append(m)
            if kept:
                kept.reverse()
                self._buffer = kept
                return

    @property
    def behind(self) -> bool:
        """Whether the log holds more than was returned so far (a poll's worth of one
        read can be less than asked for while much more is waiting)."""
        return bool(self._buffer) or self._pos < self.bus.wal.end

    def lag(self) -> int | None:
        return len(self._buffer) + max(0, self.bus.wal.end - self._pos)

    def rewind(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._buffer = [m for m in self._buffer if (m.topic, m.partition) not in offsets]
        self._next.update(offsets)
        self._pos = min(self._pos, *(self.bus.wal.locate(tp, o) for tp, o in offsets.items()))

    def commit(self, positions: Mapping[TopicPartition, Position]) -> bool:
        self.bus.store_positions(self.group, positions)
        return True

    def close(self) -> None:
        pass
