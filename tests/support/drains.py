"""Test helpers: real-format Logplex drain lines and bodies, and a drainpipe subprocess."""

from __future__ import annotations

import atexit
import base64
import json
import os
import resource
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


def ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"


def router(ms: int, service: int, status: int, dyno: str = "web.1", code: str | None = None) -> str:
    head = f'at=error code={code} desc="Request timeout"' if code else "at=info"
    return (
        f'<158>1 {ts(ms)} host heroku router - {head} method=GET path="/cart?x=1 2" '
        f'host=shop.example.com request_id=8601b555-6a54-4f5c-9c7b-9d8c2bc4b9d0 fwd="1.2.3.4" '
        f"dyno={dyno} connect=1ms service={service}ms status={status} bytes=656 protocol=https\n"
    )


def memory(ms: int, source: str, total: float, rss: float, swap: float, quota: float) -> str:
    return (
        f"<45>1 {ts(ms)} host heroku {source} - source={source} dyno=heroku.1234.8f6b5b7e "
        f"sample#memory_total={total:.2f}MB sample#memory_rss={rss:.2f}MB "
        f"sample#memory_cache=0.00MB sample#memory_swap={swap:.2f}MB "
        f"sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages "
        f"sample#memory_quota={quota:.2f}MB\n"
    )


def load(ms: int, source: str, one: float) -> str:
    return (
        f"<45>1 {ts(ms)} host heroku {source} - source={source} dyno=heroku.1234.8f6b5b7e "
        f"sample#load_avg_1m={one:.2f} sample#load_avg_5m=1.06 sample#load_avg_15m=0.99\n"
    )


def event(ms: int, app: str, procid: str, text: str) -> str:
    return f"<190>1 {ts(ms)} host {app} {procid} - {text}\n"


def body(lines: list[str]) -> bytes:
    return b"".join(f"{len(line.encode())} ".encode() + line.encode() for line in lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path

    def post(
        self, secret: str, payload: bytes, count: int, headers: dict[str, str] | None = None
    ) -> int:
        auth = base64.b64encode(f"drain:{secret}".encode()).decode()
        h = {
            "Content-Type": "application/logplex-1",
            "Logplex-Msg-Count": str(count),
            "Authorization": f"Basic {auth}",
        }
        h.update(headers or {})
        req = urllib.request.Request(f"{self.url}/logs", data=payload, method="POST", headers=h)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def post_retried(
        self, secret: str, payload: bytes, count: int, frame_id: str, deadline: float
    ) -> int:
        """POST as Logplex does: the same frame again after a refused connection or a 503
        until another answer, or until time.monotonic() passes deadline (then 0)."""
        while time.monotonic() < deadline:
            try:
                code = self.post(secret, payload, count, {"Logplex-Frame-Id": frame_id})
            except OSError:
                code = 0
            if code not in (0, 503):
                return code
            time.sleep(0.02)
        return 0

    def get(self, path: str, token: str | None) -> tuple[int, object]:
        h = {"Authorization": f"Bearer {token}"} if token else {}
        req = urllib.request.Request(f"{self.url}{path}", headers=h)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return int(r.status), json.loads(r.read())
        except urllib.error.HTTPError as e:
            return int(e.code), json.loads(e.read() or b"null")

    def text(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as r:
            return str(r.read().decode())


def drainpipe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drainpipe.cli", *args], capture_output=True, text=True, check=False
    )


def create_app(data_dir: Path, name: str) -> dict[str, str]:
    out = drainpipe("apps", "create", name, "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


_started: list[subprocess.Popen[bytes]] = []


@atexit.register
def _kill_leftovers() -> None:
    """A test that failed before stopping its server must not leave it running."""
    for proc in _started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start(
    data_dir: Path,
    port: int | None = None,
    *extra: str,
    env: dict[str, str] | None = None,
    fd_limit: int | None = None,
    scheme: str = "http",
) -> Server:
    """`drainpipe up` on data_dir, once it answers /healthz; `env` is added to this
    process's environment, and `fd_limit` sets the server's soft descriptor limit."""
    port = port or free_port()
    log_path = data_dir / f"server-{port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}

    def limit_fds() -> None:
        if fd_limit is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, hard))

    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "drainpipe.cli",
                "up",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=limit_fds,
        )
    _started.append(proc)
    url = f"{scheme}://127.0.0.1:{port}"
    unverified = ssl._create_unverified_context() if scheme == "https" else None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"drainpipe up exited {proc.returncode}: {log_path.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1, context=unverified):
                return Server(url, data_dir, proc, log_path)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"drainpipe up did not answer in 20 s: {log_path.read_text()[-2000:]}")


def stop(server: Server, sig: int = 15, timeout: float = 30) -> int:
    server.proc.send_signal(sig)
    return server.proc.wait(timeout)
