"""A cheap HTTP/1.1 keep-alive client for drain benchmarks: requests are built once.

`http.client` costs ~0.8 us of CPU per line at 500 lines a body (header objects, an
email-parser per answer), which on 2 cores is CPU taken from the server being measured.
Here each request is one prebuilt byte string sent with one `sendall`, and an answer is
read with `recv` until its header ends and then its Content-Length.
"""

from __future__ import annotations

import gzip
import socket


def logplex_request(
    host: str,
    body: bytes,
    count: int,
    authorization: str,
    frame_id: str | None = None,
    gzipped: bool = False,
) -> bytes:
    """The whole POST /logs request Logplex sends for `body` (`count` messages); gzipped,
    the request log-shuttle -gzip sends."""
    if gzipped:
        body = gzip.compress(body, compresslevel=6)
    head = [
        "POST /logs HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/logplex-1",
        f"Logplex-Msg-Count: {count}",
        f"Authorization: {authorization}",
        "User-Agent: Logplex/v123",
        f"Content-Length: {len(body)}",
    ]
    if frame_id is not None:
        head.append(f"Logplex-Frame-Id: {frame_id}")
    if gzipped:
        head.append("Content-Encoding: gzip")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class DrainClient:
    """One keep-alive connection to a drain URL (`http://host:port`)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    def send(self, request: bytes) -> int:
        """Send one prebuilt request; its answer's status (the answer's body is read)."""
        self.sock.sendall(request)
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            buf += self._recv()
        head, buf = buf[:end], buf[end + 4 :]
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(buf) < length:
            buf += self._recv()
        self._buf = buf[length:]
        return status

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()
