"""POST drain bodies to a drain URL as Logplex does: several connections, 3 tries, paced (I/O edge).

Logplex's rules: 2xx is success; a 4xx other than 429 drops the frame for good; 429,
5xx, timeouts and connection errors are retried with the same Logplex-Frame-Id, 3 tries
per frame; 3 s to connect, 5 s for the request. A drain whose endpoint refuses
connections is not tried frame by frame: like Logplex's drain, it holds its frames and
reconnects with a growing backoff (up to RECONNECT_FOR_S), so a restart of the receiver
for a few seconds loses nothing.
"""

from __future__ import annotations

import base64
import http.client
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from drainpipe.clock import SYSTEM
from drainpipe.tools.simulate.framing import DrainBody, headers
from drainpipe.tools.simulate.generator import SimulateError
from drainpipe.tools.simulate.progress import Progress

TRIES = 3
CONNECT_TIMEOUT_S = 3.0
REQUEST_TIMEOUT_S = 5.0
RETRY_BACKOFF_MAX_S = 2.0
RECONNECT_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)  # then every 4 s
RECONNECT_FOR_S = 60.0  # a frame is dropped after this long without a connection


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    user: str  # from the URL's user:password@, else "drain"
    password: str | None

    @property
    def display(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"


def parse_url(url: str) -> Target:
    """The drain URL's parts; an empty path means drainpipe's `/logs`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SimulateError(
            f"drain URL {url!r} must look like http[s]://[user:secret@]host[:port]/logs"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise SimulateError(f"drain URL {url!r} has a port that is not a number") from None
    path = parts.path if parts.path not in ("", "/") else "/logs"
    if parts.query:
        path += "?" + parts.query
    password = unquote(parts.password) if parts.password is not None else None
    return Target(
        parts.scheme, parts.hostname, port, path, unquote(parts.username or "drain"), password
    )


def check_reachable(target: Target) -> None:
    """Fail fast, with what to do, when nothing listens at the drain URL."""
    try:
        socket.create_connection((target.host, target.port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise SimulateError(
            f"cannot connect to {target.host}:{target.port} ({exc.strerror or exc}): "
            "is `drainpipe up` running there? check --url"
        ) from None


def basic_auth(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


class _Http(http.client.HTTPConnection):
    def connect(self) -> None:
        self.timeout = CONNECT_TIMEOUT_S
        super().connect()
        self.sock.settimeout(REQUEST_TIMEOUT_S)


class _Https(http.client.HTTPSConnection):
    def connect(self) -> None:
        self.timeout = CONNECT_TIMEOUT_S
        super().connect()
        self.sock.settimeout(REQUEST_TIMEOUT_S)


@dataclass
class PostStats:
    acked_bodies: int = 0
    acked_lines: int = 0
    acked_kinds: Counter[str] = field(default_factory=Counter)
    dropped_bodies: int = 0
    dropped_lines: int = 0
    retries: int = 0
    reconnects: int = 0  # connections refused and tried again, the frame held
    answers: Counter[str] = field(default_factory=Counter)  # every try not answered 2xx
    interrupted: bool = False


class Poster:
    """Delivers bodies over `connections` keep-alive connections, one thread each."""

    def __init__(
        self, target: Target, auth: Sequence[str], tokens: Sequence[str], connections: int
    ) -> None:
        if connections < 1:
            raise SimulateError(f"--connections {connections} must be at least 1")
        self.target = target
        self.auth = list(auth)  # Authorization header per app
        self.tokens = list(tokens)  # Logplex-Drain-Token per app
        self.connections = connections
        self.stats = PostStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _connection(self) -> http.client.HTTPConnection:
        cls = _Https if self.target.scheme == "https" else _Http
        return cls(self.target.host, self.target.port)

    def _deliver(self, conn: http.client.HTTPConnection, body: DrainBody) -> None:
        payload = body.payload()
        h = headers(body, self.tokens[body.app])
        h["Authorization"] = self.auth[body.app]
        attempt = refused = 0
        refused_since = 0.0
        while attempt < TRIES:
            wait = min(0.25 * 2**attempt, RETRY_BACKOFF_MAX_S)
            try:
                conn.request("POST", self.target.path, body=payload, headers=h)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except ConnectionRefusedError:
                conn.close()
                # Nobody listens (a restart): hold the frame and reconnect with backoff.
                now = SYSTEM.monotonic()
                refused_since = refused_since if refused else now
                if now - refused_since < RECONNECT_FOR_S:
                    with self._lock:
                        self.stats.reconnects += 1
                    pause = RECONNECT_BACKOFF_S[min(refused, len(RECONNECT_BACKOFF_S) - 1)]
                    refused += 1
                    if self._stop.wait(pause):
                        break
                    continue
                answer = "refused"
            except (OSError, http.client.HTTPException) as exc:
                conn.close()  # reopened by the next request
                answer = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            else:
                if 200 <= status < 300:
                    with self._lock:
                        self.stats.acked_bodies += 1
                        self.stats.acked_lines += body.count
                        self.stats.acked_kinds.update(body.kinds)
                    return
                answer = str(status)
                retry_after = resp.getheader("Retry-After", "")
                if retry_after.isdigit():
                    wait = min(float(retry_after), RETRY_BACKOFF_MAX_S)
            retry = answer == "429" or not (answer.isdigit() and int(answer) < 500)
            with self._lock:
                self.stats.answers[answer] += 1
                if retry and attempt + 1 < TRIES:
                    self.stats.retries += 1
            if not retry or attempt + 1 == TRIES or self._stop.wait(wait):
                break
            attempt += 1
            refused = 0
        with self._lock:
            self.stats.dropped_bodies += 1
            self.stats.dropped_lines += body.count

    def _work(self, todo: queue.Queue[DrainBody | None]) -> None:
        conn = self._connection()
        try:
            while (body := todo.get()) is not None:
                if not self._stop.is_set():
                    self._deliver(conn, body)
        finally:
            conn.close()

    def run(
        self,
        bodies: Iterable[DrainBody],
        due_s: Callable[[DrainBody], float],
        progress: Progress,
        total_lines: int,
    ) -> PostStats:
        """POST every body no earlier than `due_s(body)` (monotonic seconds); Ctrl-C stops."""
        todo: queue.Queue[DrainBody | None] = queue.Queue(maxsize=2 * self.connections)
        workers = [
            threading.Thread(target=self._work, args=(todo,), name=f"post-{i}", daemon=True)
            for i in range(self.connections)
        ]
        for w in workers:
            w.start()

        def show() -> None:
            s = self.stats
            errors = " ".join(f"{k}={v}" for k, v in sorted(s.answers.items()))
            progress.update(s.acked_lines, s.acked_lines / max(total_lines, 1), errors)

        try:
            for body in bodies:
                while (left := due_s(body) - SYSTEM.monotonic()) > 0:
                    time.sleep(min(left, 0.1))
                    show()
                while True:
                    try:
                        todo.put(body, timeout=0.1)
                        break
                    except queue.Full:
                        show()
                show()
        except KeyboardInterrupt:
            self.stats.interrupted = True
            self._stop.set()
        for _ in workers:
            while True:
                try:
                    todo.put(None, timeout=0.1)
                    break
                except queue.Full:
                    show()
        for w in workers:
            while w.is_alive():
                w.join(0.1)
                show()
        return self.stats
