"""Freshness probes of `bench.steady`: one-line bodies to a probe app, and the time from
each 204 until the API shows it."""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import math
import threading
import time
import uuid

from drainpipe.model import MINUTE_MS
from drainpipe.query.downsample import iso
from tests.support import drains

PROBE_APP = "probe"
POLL_S = 0.02
PROBE_TIMEOUT_S = 30.0


@dataclasses.dataclass
class Probe:
    service_ms: int
    minute_ms: int
    nth_in_minute: int  # the minute's count once this probe is visible
    acked_at: float
    delay_s: float | None = None


def fresh_max_by_minute(probes: list[Probe]) -> dict[str, float]:
    """The largest freshness of the probes of each minute ("HH:MM" UTC)."""
    out: dict[str, float] = {}
    for p in probes:
        if p.delay_s is not None and p.delay_s != math.inf:
            minute = time.strftime("%H:%M", time.gmtime(p.minute_ms / 1000))
            out[minute] = round(max(out.get(minute, 0.0), p.delay_s), 3)
    return out


class Prober:
    """Sends a one-line body to the probe app every `every_s`; one poller resolves them."""

    def __init__(self, url: str, secret: str, token: str, every_s: float) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.addr = (host, int(port))
        self.auth = "Basic " + base64.b64encode(f"drain:{secret}".encode()).decode()
        self.bearer = f"Bearer {token}"
        self.every_s = every_s
        self.probes: list[Probe] = []
        self.bad: dict[str, int] = {}
        self.lock = threading.Lock()
        self.sending = threading.Event()
        self.done = threading.Event()
        self.poll_errors: dict[str, int] = {}

    def send_loop(self, until: threading.Event) -> None:
        conn = http.client.HTTPConnection(*self.addr, timeout=10)
        per_minute: dict[int, int] = {}
        k = 0
        next_at = time.monotonic()
        while not until.is_set():
            k += 1
            ms = int(time.time() * 1000)
            minute = ms - ms % MINUTE_MS
            service = 10 + k  # rises with every probe: a minute's max is its newest probe
            line = drains.router(ms, service, 200)
            try:
                conn.request(
                    "POST",
                    "/logs",
                    body=drains.body([line]),
                    headers={
                        "Content-Type": "application/logplex-1",
                        "Logplex-Msg-Count": "1",
                        "Logplex-Frame-Id": uuid.uuid4().hex,
                        "Authorization": self.auth,
                        "User-Agent": "Logplex/v123",
                    },
                )
                resp = conn.getresponse()
                resp.read()
                status = str(resp.status)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                status = type(exc).__name__
            acked = time.monotonic()
            if status == "204":
                per_minute[minute] = per_minute.get(minute, 0) + 1
                with self.lock:
                    self.probes.append(Probe(service, minute, per_minute[minute], acked))
            else:
                self.bad[status] = self.bad.get(status, 0) + 1
            next_at += self.every_s
            until.wait(max(0.0, next_at - time.monotonic()))
        conn.close()
        self.sending.set()

    def poll_loop(self) -> None:
        conn = http.client.HTTPConnection(*self.addr, timeout=10)
        while True:
            t = time.monotonic()
            with self.lock:
                waiting = [p for p in self.probes if p.delay_s is None]
            for p in waiting:
                if t - p.acked_at > PROBE_TIMEOUT_S:
                    p.delay_s = math.inf
            waiting = [p for p in waiting if p.delay_s is None]
            if not waiting:
                if self.sending.is_set():
                    break
                time.sleep(POLL_S / 4)
                continue
            lo = min(p.minute_ms for p in waiting) - MINUTE_MS
            hi = int(time.time() * 1000) + 2 * MINUTE_MS
            path = (
                f"/api/v1/apps/{PROBE_APP}/metrics/router.latency"
                f"?start={iso(lo)}&end={iso(hi)}&step=60"
            )
            try:
                conn.request("GET", path, headers={"Authorization": self.bearer})
                resp = conn.getresponse()
                raw = resp.read()
                seen = time.monotonic()
                if resp.status != 200:
                    key = str(resp.status)
                    self.poll_errors[key] = self.poll_errors.get(key, 0) + 1
                    points = {}
                else:
                    points = {pt["t"]: pt for s in json.loads(raw)["series"] for pt in s["points"]}
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                key = type(exc).__name__
                self.poll_errors[key] = self.poll_errors.get(key, 0) + 1
                points, seen = {}, time.monotonic()
            for p in waiting:
                pt = points.get(iso(p.minute_ms))
                if pt and pt["count"] >= p.nth_in_minute and pt["max"] >= p.service_ms - 0.01:
                    p.delay_s = seen - p.acked_at
            time.sleep(max(0.0, POLL_S - (time.monotonic() - t)))
        conn.close()
        self.done.set()


def quantile(xs: list[float], q: float) -> float:
    """Nearest rank."""
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


# -- one run ----------------------------------------------------------------------------
