"""Accepting a drain request's records once: dedup by Logplex-Frame-Id, then a durable append.

Logplex resends a frame with the same Logplex-Frame-Id when it saw no answer, so a
request that was stored but not answered arrives again. The frame id is appended last,
in the same durable append as the request's records, so it is in the log only if they
are; after a restart the recent ids are read back from the log's tail. A duplicate that
arrives while the first copy is still being written waits for it, and is appended only
if the first copy failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Protocol

from drainpipe.bus import BusUnavailable, Message, OutRecord, Producer
from drainpipe.model import FRAMES_TOPIC, partition_key

RECENT_FRAME_IDS = 65_536


class Acceptor(Protocol):
    async def accept(self, owner: str, frame_id: str | None, records: Sequence[OutRecord]) -> bool:
        """True once durably appended; False for a duplicate frame; raises BusUnavailable."""
        ...


def frame_key(owner: str, frame_id: str) -> bytes:
    """16 bytes standing for (owner, frame id): the recent ids fill 65,536 entries in
    minutes of steady traffic, and a digest is smaller than the pair of strings (figures
    in BENCHMARKS.md). At 128 bits no two frames collide in practice."""
    return hashlib.blake2b(f"{owner}\0{frame_id}".encode(), digest_size=16).digest()


def recent_frames(tail: Iterable[Message]) -> list[tuple[str, str]]:
    """(owner, Logplex-Frame-Id) of the requests in the frame-id topic's tail."""
    return [(m.key.decode().partition("|")[0], m.value.decode()) for m in tail]


def frame_record(owner: str, frame_id: str) -> OutRecord:
    return OutRecord(FRAMES_TOPIC, partition_key(owner, ""), frame_id.encode())


class LocalAcceptor:
    """Dedup in this process, then the bus producer's durable send.

    `gate`, when set, names why the pipeline cannot take lines now (a stage down or far
    behind, see `health`); requests are then refused as the bus being unavailable."""

    def __init__(self, producer: Producer, recent: Iterable[tuple[str, str]] = ()) -> None:
        self.producer = producer
        self.gate: Callable[[], str | None] | None = None
        self._lock = threading.Lock()
        self._recent: OrderedDict[bytes, None] = OrderedDict()
        self._inflight: dict[bytes, Future[None]] = {}
        for owner, frame_id in recent:
            self._remember(frame_key(owner, frame_id))

    def _remember(self, key: bytes) -> None:
        self._recent[key] = None
        self._recent.move_to_end(key)
        if len(self._recent) > RECENT_FRAME_IDS:
            self._recent.popitem(last=False)

    def submit(
        self, owner: str, frame_id: str | None, records: Sequence[OutRecord]
    ) -> Future[bool]:
        """Thread-safe; the future completes from the bus's writer thread."""
        out: Future[bool] = Future()
        reason = self.gate() if self.gate is not None else None
        if reason is not None:
            out.set_exception(BusUnavailable(f"the pipeline is not keeping up: {reason}"))
            return out
        if not frame_id:
            self._send(list(records), None, out)
            return out
        key = frame_key(owner, frame_id)
        with self._lock:
            if key in self._recent:
                out.set_result(False)
                return out
            earlier = self._inflight.get(key)
            if earlier is None:
                mine: Future[None] = Future()
                self._inflight[key] = mine
        if earlier is not None:
            # Same frame still being written: its outcome decides.
            earlier.add_done_callback(lambda f: self._after(f, owner, frame_id, records, out))
            return out
        self._send([*records, frame_record(owner, frame_id)], (key, mine), out)
        return out

    def _after(
        self,
        earlier: Future[None],
        owner: str,
        frame_id: str,
        records: Sequence[OutRecord],
        out: Future[bool],
    ) -> None:
        if earlier.exception() is None:
            out.set_result(False)
        else:
            self.submit(owner, frame_id, records).add_done_callback(lambda f: _copy(f, out))

    def _send(
        self,
        records: list[OutRecord],
        pending: tuple[bytes, Future[None]] | None,
        out: Future[bool],
    ) -> None:
        def done(f: Future[None]) -> None:
            exc = f.exception()
            if pending is not None:
                key, mine = pending
                with self._lock:
                    self._inflight.pop(key, None)
                    if exc is None:
                        self._remember(key)
                if exc is None:
                    mine.set_result(None)
                else:
                    mine.set_exception(exc)
            if exc is None:
                out.set_result(True)
            else:
                out.set_exception(exc)

        if not records:
            out.set_result(True)
            return
        self.producer.send(records).add_done_callback(done)

    async def accept(self, owner: str, frame_id: str | None, records: Sequence[OutRecord]) -> bool:
        return await asyncio.wrap_future(self.submit(owner, frame_id, records))


def _copy(src: Future[bool], dst: Future[bool]) -> None:
    exc = src.exception()
    if exc is None:
        dst.set_result(src.result())
    else:
        dst.set_exception(exc)
