"""Logplex framing of simulated lines: drain bodies, their headers, and the `.drain` file format.

A body holds one app's lines, at most `max_lines` of them (Logplex buffers up to 1,024
per drain), and is closed early once its first line is `max_age_us` old in simulated
time, as Logplex flushes a quiet drain. Bodies are octet-counted (RFC 6587): `<len> <msg>`
where len counts the bytes of msg, trailing newline included.

A `.drain` file holds drain bodies as JSON lines, one request per line:
    {"app": "sim-1", "msg_count": 500, "frame_id": "<32 hex>",
     "drain_token": "d.<uuid>", "user_agent": "Logplex/v123", "body": "<octet-counted body>"}
`body` is the request body as a JSON string (drain bodies are UTF-8 text); the other
fields are the request's Logplex headers. `drainpipe replay` reads these files back.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import msgspec

from drainpipe.tools.simulate.generator import SimLine
from drainpipe.tools.simulate.lines import uuid4

USER_AGENT: Final = "Logplex/v123"
CONTENT_TYPE: Final = "application/logplex-1"
MAX_LINES: Final = 500
MAX_AGE_US: Final = 1_000_000
DRAIN_SUFFIX: Final = ".drain"


def octet_counted(lines: list[str]) -> bytes:
    """`<len> <msg>` for every line, len in bytes (lines are ASCII unless they say otherwise)."""
    if all(line.isascii() for line in lines):
        return "".join(f"{len(line)} {line}" for line in lines).encode()
    return b"".join(b"%d %s" % (len(b), b) for b in (line.encode() for line in lines))


@dataclass(slots=True)
class DrainBody:
    """One drain request of one app: its lines, frame id and what kinds of lines it holds."""

    app: int
    frame_id: str  # 32 hex chars, kept when the request is retried
    lines: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    first_us: int = 0
    last_us: int = 0

    @property
    def count(self) -> int:
        return len(self.lines)

    def payload(self) -> bytes:
        return octet_counted(self.lines)


def drain_token(seed: int, app: int) -> str:
    """The `Logplex-Drain-Token` of an app's simulated drain: `d.<uuid>`."""
    return "d." + uuid4(random.Random(f"{seed}:{app}:drain").getrandbits(128))


def headers(body: DrainBody, token: str) -> dict[str, str]:
    return {
        "Content-Type": CONTENT_TYPE,
        "Logplex-Msg-Count": str(body.count),
        "Logplex-Frame-Id": body.frame_id,
        "Logplex-Drain-Token": token,
        "User-Agent": USER_AGENT,
    }


class Framer:
    """Groups SimLines into DrainBodies per app; `add` returns the bodies it closed."""

    def __init__(
        self, apps: int, frame_seed: str, max_lines: int = MAX_LINES, max_age_us: int = MAX_AGE_US
    ) -> None:
        if not 1 <= max_lines <= 1024:
            raise ValueError(f"lines per body {max_lines} must be 1..1024 (Logplex's buffer)")
        self.max_lines = max_lines
        self.max_age_us = max_age_us
        self._ids = random.Random(frame_seed)  # frame ids apart from the traffic's randomness
        self._open: list[DrainBody | None] = [None] * apps
        self._sweep_us: int | None = None

    def add(self, line: SimLine) -> list[DrainBody]:
        done: list[DrainBody] = []
        t = line.t_us
        if self._sweep_us is None:
            self._sweep_us = t + self.max_age_us
        elif t >= self._sweep_us:
            done = self._close_older_than(t - self.max_age_us)
            self._sweep_us = t + self.max_age_us // 4
        body = self._open[line.app]
        if body is None:
            body = self._open[line.app] = DrainBody(
                line.app, f"{self._ids.getrandbits(128):032x}", first_us=t
            )
        body.lines.append(line.text)
        body.kinds[line.kind] += 1
        body.last_us = t
        if len(body.lines) >= self.max_lines:
            self._open[line.app] = None
            done.append(body)
        return done

    def _close_older_than(self, cutoff_us: int) -> list[DrainBody]:
        done = []
        for i, body in enumerate(self._open):
            if body is not None and body.first_us <= cutoff_us:
                done.append(body)
                self._open[i] = None
        return done

    def flush(self) -> list[DrainBody]:
        """Every open body, oldest first (at the end of a run)."""
        done = [b for b in self._open if b is not None]
        self._open = [None] * len(self._open)
        return sorted(done, key=lambda b: b.first_us)


class DrainRecord(msgspec.Struct, kw_only=True):
    """One line of a `.drain` file: a drain request's Logplex headers and body."""

    body: str
    msg_count: int
    app: str = ""
    frame_id: str = ""
    drain_token: str = ""
    user_agent: str = ""


_encoder = msgspec.json.Encoder()
record_decoder: Final = msgspec.json.Decoder(DrainRecord)


def record_line(body: DrainBody, app_name: str, token: str) -> bytes:
    """The `.drain` file line (newline included) of one body."""
    rec = DrainRecord(
        body=body.payload().decode(),
        msg_count=body.count,
        app=app_name,
        frame_id=body.frame_id,
        drain_token=token,
        user_agent=USER_AGENT,
    )
    return _encoder.encode(rec) + b"\n"
