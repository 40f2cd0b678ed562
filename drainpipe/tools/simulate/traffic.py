"""Router requests of simulated apps: paths, status mix, log-normal latency, H errors (pure).

Requests arrive as one Poisson stream shared by the apps (app i gets a share in
proportion to 1 / (i + 1)). Their random parts are drawn with numpy in blocks of BLOCK
requests, so a line costs little more than its formatting; the dyno is picked when the
line is taken, from the app's web dynos at that moment. Shares are of all router lines.
Service time is log-normal around the app's median times the path's slowness, with a
long tail (TAIL_SHARE of requests from a distribution 12x slower, capped below the
router's 30 s timeout); H12 timeouts are the only requests at 30000 ms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from drainpipe.tools.simulate.lines import PRI_ROUTER, syslog

BLOCK: Final = 4096
# (status, share of router lines without an H error): 2xx 86 %, 3xx 7 %, 4xx 5.5 %, 5xx 1.5 %
STATUSES: Final = (
    (200, 0.80),
    (201, 0.03),
    (204, 0.03),
    (301, 0.01),
    (302, 0.03),
    (304, 0.03),
    (400, 0.01),
    (401, 0.01),
    (403, 0.005),
    (404, 0.025),
    (422, 0.005),
    (500, 0.01),
    (502, 0.003),
    (503, 0.002),
)
# (code, share of all router lines, at, desc, status)
ERRORS: Final = (
    ("H12", 0.0010, "error", "Request timeout", 503),
    ("H13", 0.0003, "error", "Connection closed without response", 503),
    ("H14", 0.0002, "error", "No web processes running", 503),
    ("H27", 0.0005, "warning", "Client Request Interrupted", 499),
)
ERROR_SHARE: Final = sum(e[1] for e in ERRORS)
TAIL_SHARE: Final = 0.03
TIMEOUT_MS: Final = 30_000
# protocol fields: classic routers say protocol=https; newer ones add tls= and tls_version=
PROTOCOLS: Final = (
    ("protocol=https", 0.57),
    ("protocol=http", 0.03),
    ("protocol=http1.1 tls=true tls_version=TLSv1.3", 0.25),
    ("protocol=http2.0 tls=true tls_version=TLSv1.3", 0.10),
    ("protocol=http1.1 tls=true tls_version=TLSv1.2", 0.04),
    ("protocol=http1.1 tls=false", 0.01),
)

_TERMS: Final = ("red+shoes", "gift", "laptop+stand", "coffee", "usb-c+cable", "desk%20lamp")
_CATEGORIES: Final = ("books", "garden", "kitchen", "toys", "outdoor")
_STEPS: Final = ("address", "payment", "review")
_Fill = Callable[[int, str], str]  # (random 62-bit number, the app's asset hash) -> path
# (method, path maker, weight, slowness: a multiple of the app's median service time)
PATHS: Final[tuple[tuple[str, _Fill, float, float], ...]] = (
    ("GET", lambda k, a: "/", 10, 0.6),
    ("GET", lambda k, a: f"/products/{1 + k % 50_000}", 18, 1.0),
    ("GET", lambda k, a: f"/products?category={_CATEGORIES[k % 5]}&page={1 + k % 19}", 8, 1.4),
    ("GET", lambda k, a: f"/search?q={_TERMS[k % 6]}&page={1 + (k >> 8) % 4}", 7, 2.5),
    ("GET", lambda k, a: "/cart", 6, 0.8),
    ("POST", lambda k, a: "/cart/items", 4, 1.2),
    ("GET", lambda k, a: f"/checkout?step={_STEPS[k % 3]}", 3, 1.6),
    ("POST", lambda k, a: "/checkout", 2, 3.0),
    ("GET", lambda k, a: f"/assets/application-{a}.js", 12, 0.15),
    ("GET", lambda k, a: f"/api/v1/orders/{k % 10**6}?include=items,customer", 6, 1.3),
    ("PUT", lambda k, a: f"/api/v1/users/{k % 10**5}", 2, 1.5),
    ("PATCH", lambda k, a: f"/api/v1/orders/{k % 10**6}", 1.5, 1.4),
    ("DELETE", lambda k, a: f"/api/v1/sessions/{k:016x}", 1, 0.7),
    ("POST", lambda k, a: "/login", 2, 2.0),
    ("HEAD", lambda k, a: "/healthz", 3, 0.1),
    ("OPTIONS", lambda k, a: "/api/v1/orders", 1, 0.1),
    (
        "GET",
        lambda k, a: f"/users/{k % 10**5}/settings?tab=billing&utm_source=newsletter",
        1.5,
        1.1,
    ),
)
_HEADS: Final = tuple(f'at={at} code={code} desc="{desc}"' for code, _, at, desc, _ in ERRORS)


def _cum(shares: Sequence[float]) -> npt.NDArray[np.float64]:
    """Cumulative shares normalised to end at exactly 1."""
    cum = np.cumsum(np.asarray(shares, dtype=np.float64))
    out: npt.NDArray[np.float64] = cum / cum[-1]
    return out


def _pick(cum: npt.NDArray[np.float64], u: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Index of the share each uniform number in u falls in."""
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


class RouterStream:
    """The time-ordered router requests of all apps; `peek_us` then `take` one at a time."""

    def __init__(self, seed: int, names: Sequence[str], rate: float, start_us: int) -> None:
        self.rng = np.random.default_rng([seed, 5424])
        self.names = tuple(names)
        self.gap_us = 1e6 / rate
        self._clock_us = float(start_us)
        n = len(names)
        self.medians = 20.0 + 60.0 * self.rng.random(n)
        self.assets = [f"{x:016x}" for x in self.rng.integers(0, 2**62, n).tolist()]
        ips = self.rng.integers(0, 2**32, (n, 256)).tolist()
        self.clients = [
            [f"{1 + (x >> 24) % 223}.{(x >> 16) & 255}.{(x >> 8) & 255}.{1 + x % 254}" for x in row]
            for row in ips
        ]
        self.hosts = [(f"{a}.herokuapp.com", f"www.{a}.example.com") for a in names]
        self._app_cum = _cum([1 / (i + 1) for i in range(n)])
        self._path_cum = _cum([p[2] for p in PATHS])
        self._slowness = np.log([p[3] for p in PATHS])
        self._status_cum = _cum([s[1] for s in STATUSES])
        self._status = np.array([s[0] for s in STATUSES])
        self._error_cum = np.cumsum([e[1] for e in ERRORS])
        self._proto_cum = _cum([p[1] for p in PROTOCOLS])
        self._i = BLOCK
        self._draw()

    def _draw(self) -> None:
        """The random parts of the next BLOCK requests, as Python lists."""
        r, b = self.rng, BLOCK
        t = self._clock_us + np.cumsum(r.exponential(self.gap_us, b))
        self._clock_us = float(t[-1])
        app = _pick(self._app_cum, r.random(b))
        path = _pick(self._path_cum, r.random(b))
        roll = r.random(b)
        error = np.where(roll < ERROR_SHARE, _pick(self._error_cum, roll), -1)
        status = self._status[_pick(self._status_cum, r.random(b))]
        tail = r.random(b) < TAIL_SHARE
        mu = np.log(self.medians[app]) + self._slowness[path] + np.where(tail, math.log(12), 0.0)
        service = np.exp(mu + np.where(tail, 1.0, 0.6) * r.standard_normal(b))
        size_u = r.random(b)
        size = np.where(
            status < 300,
            np.exp(8.0 + 1.2 * r.standard_normal(b)),  # median ~3 KB, long tail
            np.where(status < 400, 90 + 310 * size_u, 1600 * size_u),
        )
        size[(status == 204) | (status == 304)] = 0
        connect = np.floor(r.exponential(1.0, b))
        slow = r.random(b) < 0.005
        connect[slow] = 5 + np.floor(55 * r.random(int(slow.sum())))
        self._t = t.astype(np.int64).tolist()
        self._app = app.tolist()
        self._path = path.tolist()
        self._error = error.tolist()
        self._status_l = status.tolist()
        self._service = np.clip(service, 1, TIMEOUT_MS - 1).astype(np.int64).tolist()
        self._size = size.astype(np.int64).tolist()
        self._connect = connect.astype(np.int64).tolist()
        self._k = r.integers(0, 2**62, b).tolist()
        self._dyno_u = r.random(b).tolist()
        self._client = r.integers(0, 256, b).tolist()
        self._chain = np.where(r.random(b) < 0.1, r.integers(1, 2**24, b), 0).tolist()
        self._proto = _pick(self._proto_cum, r.random(b)).tolist()
        self._host = (r.random(b) < 0.5).tolist()
        self._ids = r.bytes(16 * b).hex()
        self._i = 0

    def peek_us(self) -> int:
        """Time of the next request."""
        if self._i == BLOCK:
            self._draw()
        return int(self._t[self._i])

    # <158>1 2026-11-21T10:00:00.123456+00:00 host heroku router - at=info method=GET path="/cart" host=shop.example.com request_id=8601b555-6a54-4f5c-9c7b-9d8c2bc4b9d0 fwd="1.2.3.4" dyno=web.1 connect=1ms service=22ms status=304 bytes=656 protocol=https  # noqa: E501
    def take(self, web: Sequence[Sequence[str]]) -> tuple[int, int, str]:
        """(t_us, app index, line) of the next request, routed to one of the app's web dynos."""
        if self._i == BLOCK:
            self._draw()
        i = self._i
        self._i = i + 1
        t, a, k = self._t[i], self._app[i], self._k[i]
        method, fill, _, _ = PATHS[self._path[i]]
        dynos = web[a]
        dyno = dynos[int(self._dyno_u[i] * len(dynos))] if dynos else ""
        connect = f"{self._connect[i]}ms"
        service, status, size = f"{self._service[i]}ms", self._status_l[i], str(self._size[i])
        error = self._error[i]
        head = "at=info"
        if error < 0 and not dynos:
            error = 2  # no web dyno up: H14
        if error >= 0:
            head = _HEADS[error]
            status = ERRORS[error][4]
            if error == 0:  # H12
                service, size = f"{TIMEOUT_MS}ms", "0"
            elif error == 1:  # H13
                size = "0"
            elif error == 2:  # H14: nothing was routed
                dyno = connect = service = size = ""
            else:  # H27: the client went away
                service, size = f"{k % 5}ms", ""
        fwd = self.clients[a][self._client[i]]
        chain = self._chain[i]
        if chain:
            fwd = f"{fwd},10.{chain >> 16}.{(chain >> 8) & 255}.{1 + chain % 254}"
        h = self._ids[32 * i : 32 * i + 32]
        rid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
        text = (
            f'{head} method={method} path="{fill(k, self.assets[a])}" '
            f"host={self.hosts[a][self._host[i]]} request_id={rid} "
            f'fwd="{fwd}" dyno={dyno} connect={connect} service={service} status={status} '
            f"bytes={size} {PROTOCOLS[self._proto[i]][0]}"
        )
        return t, a, syslog(PRI_ROUTER, t, "heroku", "router", text)
