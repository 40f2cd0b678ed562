"""The primary's socket: HTTP worker processes hand it a request's records to append.

The embedded log has one writer (the process holding its lock). HTTP workers parse and
encode drain requests on their own cores, then send the encoded records here over a
Unix socket; the primary dedups by frame id and appends with group commit (one fsync for
all workers' concurrent requests), then answers. Frames on the socket are a u32 length
and a msgpack array:
    request  [id, owner, frame_id or nil, [[topic, key, value], ...]]
    response [id, status, message]   status: 0 appended, 1 duplicate, 2 unavailable
A request with an empty owner (no app has one) asks for the primary's health instead: the
response's status is 0 when every stage is well, else 2, and its message the report as
JSON (see `health`), which a worker serves as /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import struct
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import msgspec

from drainpipe.bus import BusUnavailable, OutRecord
from drainpipe.ingest.acceptor import LocalAcceptor

log = logging.getLogger(__name__)

LEN = struct.Struct("<I")
MAX_FRAME = 64 * 1024 * 1024
APPENDED, DUPLICATE, UNAVAILABLE = 0, 1, 2

Request = tuple[int, str, str | None, list[tuple[str, bytes, bytes]]]
_enc = msgspec.msgpack.Encoder()
_req = msgspec.msgpack.Decoder(tuple[int, str, str | None, list[tuple[str, bytes, bytes]]])
_resp = msgspec.msgpack.Decoder(tuple[int, int, str])


class LogServer:
    """Serves a LocalAcceptor on a Unix socket, from a thread with its own event loop."""

    def __init__(
        self,
        acceptor: LocalAcceptor,
        path: Path,
        health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.acceptor = acceptor
        self.health = health
        self.path = path
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-server", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> None:
        if self.path.exists():
            self.path.unlink()  # left by a killed primary; the bus lock proves it is gone
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
            os.chmod(self.path, 0o600)
            self._ready.set()
            async with self._server:
                await self._server.serve_forever()

        try:
            with contextlib.suppress(asyncio.CancelledError):
                self._loop.run_until_complete(main())
        finally:
            # Closed here, in its thread: a loop left open is closed by the garbage
            # collector at exit, after its self-pipe's socket, and prints a traceback.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                gather = asyncio.gather(*pending, return_exceptions=True)
                self._loop.run_until_complete(gather)
            self._loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()

        def answer(rid: int, fut: Future[bool]) -> None:
            exc = fut.exception()
            if exc is None:
                body = (rid, APPENDED if fut.result() else DUPLICATE, "")
            else:
                body = (rid, UNAVAILABLE, str(exc))
            data = _enc.encode(body)
            loop.call_soon_threadsafe(writer.write, LEN.pack(len(data)) + data)

        try:
            while True:
                head = await reader.readexactly(LEN.size)
                (size,) = LEN.unpack(head)
                if size > MAX_FRAME:
                    log.error("logserver.frame_too_large", extra={"bytes": size})
                    return
                rid, owner, frame_id, raw = _req.decode(await reader.readexactly(size))
                if not owner:
                    report = self.health() if self.health is not None else {"status": "ok"}
                    status = APPENDED if report["status"] == "ok" else UNAVAILABLE
                    data = _enc.encode((rid, status, json.dumps(report)))
                    writer.write(LEN.pack(len(data)) + data)
                    continue
                records = [OutRecord(t, k, v) for t, k, v in raw]
                fut = self.acceptor.submit(owner, frame_id, records)
                fut.add_done_callback(functools.partial(answer, rid))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._thread.join(10)
        if self.path.exists():
            self.path.unlink()


class RemoteAcceptor:
    """An HTTP worker's side: one connection to the primary, requests multiplexed by id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[tuple[int, str]]] = {}
        self._next = 0
        self._connecting: asyncio.Lock | None = None

    async def _connect(self) -> asyncio.StreamWriter:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is None:
                reader, self._writer = await asyncio.open_unix_connection(str(self.path))
                asyncio.get_running_loop().create_task(self._read(reader))
            return self._writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (size,) = LEN.unpack(await reader.readexactly(LEN.size))
                rid, status, message = _resp.decode(await reader.readexactly(size))
                fut = self._pending.pop(rid, None)
                if fut is not None and not fut.done():
                    fut.set_result((status, message))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            log.error("logserver.owner_gone", extra={"error": str(exc)})
        finally:
            self._writer = None
            pending, self._pending = self._pending, {}
            for fut in pending.values():
                if not fut.done():
                    fut.set_exception(BusUnavailable("the primary process is not answering"))

    async def _ask(
        self, owner: str, frame_id: str | None, records: Sequence[OutRecord]
    ) -> tuple[int, str]:
        try:
            writer = await self._connect()
        except OSError as exc:
            raise BusUnavailable(f"cannot reach the primary at {self.path}: {exc}") from exc
        self._next += 1
        rid = self._next
        fut: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        data = _enc.encode((rid, owner, frame_id, [(r.topic, r.key, r.value) for r in records]))
        writer.write(LEN.pack(len(data)) + data)
        return await fut

    async def accept(self, owner: str, frame_id: str | None, records: Sequence[OutRecord]) -> bool:
        status, message = await self._ask(owner, frame_id, records)
        if status == UNAVAILABLE:
            raise BusUnavailable(message)
        return status == APPENDED

    async def health(self) -> dict[str, Any]:
        """The primary's health report; a failing one when the primary does not answer."""
        try:
            _, message = await asyncio.wait_for(self._ask("", None, []), 5.0)
            report: dict[str, Any] = json.loads(message)
        except BusUnavailable as exc:
            report = {"status": "failing", "problems": [str(exc)], "stages": {}}
        except TimeoutError:
            problem = "the primary did not answer a health check within 5 s"
            report = {"status": "failing", "problems": [problem], "stages": {}}
        return report
