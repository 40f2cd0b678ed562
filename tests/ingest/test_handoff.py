"""The log server that HTTP workers hand records to: it starts, serves, and stops clean."""

from __future__ import annotations

from pathlib import Path

from drainpipe.bus.embedded import EmbeddedBus
from drainpipe.ingest.acceptor import LocalAcceptor
from drainpipe.ingest.handoff import LogServer


def test_stopping_closes_its_event_loop_and_removes_its_socket(tmp_path: Path) -> None:
    """A loop left open was closed by the garbage collector at exit, after its self-pipe's
    socket, and `drainpipe up` ended with an 'Exception ignored' traceback now and then."""
    bus = EmbeddedBus(tmp_path / "bus", partitions=1)
    try:
        server = LogServer(LocalAcceptor(bus.producer()), tmp_path / "log.sock")
        server.start()
        assert server.path.exists()
        server.stop()
        assert server._loop.is_closed()
        assert not server.path.exists()
    finally:
        bus.close()
