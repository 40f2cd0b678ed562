"""The one generated data set every tool sees, and the exact per-minute answers for it.

N Heroku router lines as a Logplex drain delivers them (RFC 5424, `<158>1 ... host
heroku router - at=info method=... service=22ms status=200 ...`, the same layout as
tests/drains.router), written once as a plain syslog file (mtail's input), cut into
500-line octet-counted drain bodies per app (drainpipe's input) and into InfluxDB line
protocol batches (InfluxDB's input). Realistic: four apps of different sizes and dyno
counts, log-normal service times per app capped at the router's 30 s, a status mix with
H12/H13/H27 router errors, spread over `minutes` whole minutes ending two minutes ago.
Every line has a distinct microsecond timestamp, so no two InfluxDB points of a series
share a time (InfluxDB would keep only the last of them).
"""

from __future__ import annotations

import calendar
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

APPS = ("shop", "api", "blog", "status")
APP_WEIGHTS = (0.45, 0.30, 0.15, 0.10)
APP_DYNOS = (8, 6, 3, 2)
APP_MU = (3.4, 2.9, 3.8, 3.1)  # log-normal mu of service ms (sigma 1.0)
MINUTE_MS = 60_000

# (weight, status, head, method): a router's usual mix, with router errors
STATUSES = (
    (0.81, 200, "at=info", "GET"),
    (0.03, 201, "at=info", "POST"),
    (0.04, 302, "at=info", "GET"),
    (0.05, 304, "at=info", "GET"),
    (0.04, 404, "at=info", "GET"),
    (0.01, 422, "at=info", "POST"),
    (0.015, 500, "at=info", "GET"),
    (0.003, 503, 'at=error code=H12 desc="Request timeout"', "GET"),
    (0.001, 503, 'at=error code=H13 desc="Connection closed without response"', "POST"),
    (0.001, 499, 'at=warning code=H27 desc="Client Request Interrupted"', "GET"),
)
PATHS = ('"/"', '"/cart?x=1 2"', '"/api/v1/orders/9d8c2bc4"', '"/search?q=red"', '"/login"')


@dataclass
class Dataset:
    start_ms: int  # first minute (inclusive)
    end_ms: int  # last minute's end (exclusive)
    lines: list[bytes]  # syslog lines in time order, each ending in "\n"
    app: np.ndarray  # index into APPS, per line
    ts_us: np.ndarray
    service: np.ndarray  # ms, integers
    status: np.ndarray


@dataclass
class Truth:
    count: int
    sum: float
    p95_nearest: float  # InfluxDB's percentile(): sorted[floor(n * 0.95 + 0.5) - 1]
    p95_lower: float  # drainpipe's target: sorted[floor(0.95 * (n - 1))]
    by_class: dict[str, int]  # "2", "3", "4", "5" -> requests


def generate(n: int, minutes: int, seed: int = 7) -> Dataset:
    rng = np.random.default_rng(seed)
    r = random.Random(seed)
    end_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS - 2 * MINUTE_MS
    start_ms = end_ms - minutes * MINUTE_MS
    span_us = minutes * MINUTE_MS * 1000
    if n > span_us:
        raise ValueError(f"{n} lines do not fit in {minutes} minutes at one per microsecond")
    # distinct, increasing microsecond timestamps: sorted draws plus their index
    ts_us = start_ms * 1000 + np.sort(rng.integers(0, span_us - n + 1, n)) + np.arange(n)
    app = rng.choice(len(APPS), n, p=APP_WEIGHTS).astype(np.int8)
    service = np.minimum(np.floor(rng.lognormal(np.asarray(APP_MU)[app], 1.0)), 30_000).astype(
        np.int64
    )
    weights = np.asarray([s[0] for s in STATUSES])
    kind = rng.choice(len(STATUSES), n, p=weights / weights.sum())
    service[kind == 7] = 30_000  # H12: the router gave up after 30 s
    status = np.asarray([s[1] for s in STATUSES])[kind]
    dynos = np.asarray(APP_DYNOS)[app]
    dyno = rng.integers(0, 1 << 30, n) % dynos + 1
    lines: list[bytes] = []
    stamp_of: dict[int, str] = {}
    for i in range(n):
        us = int(ts_us[i])
        sec = us // 1_000_000
        stamp = stamp_of.get(sec)
        if stamp is None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            stamp_of[sec] = stamp
        _, st, head, method = STATUSES[kind[i]]
        rid = f"{r.getrandbits(128):032x}"
        lines.append(
            f"<158>1 {stamp}.{us % 1_000_000:06d}+00:00 host heroku router - {head} "
            f"method={method} path={r.choice(PATHS)} host={APPS[app[i]]}.herokuapp.com "
            f"request_id={rid[:8]}-{rid[8:12]}-{rid[12:16]}-{rid[16:20]}-{rid[20:]} "
            f'fwd="203.0.113.{r.randint(1, 254)}" dyno=web.{dyno[i]} '
            f"connect={r.randint(0, 2)}ms service={service[i]}ms status={st} "
            f"bytes={r.randint(0, 40_000)} protocol=https\n".encode()
        )
    return Dataset(start_ms, end_ms, lines, app, ts_us, service, status)


def write_file(ds: Dataset, path: Path) -> None:
    with open(path, "wb") as f:
        f.writelines(ds.lines)


def frame_lists(ds: Dataset, per_body: int) -> list[tuple[int, list[bytes]]]:
    """(app index, lines) of each drain request: an app's lines in time order, cut every
    `per_body` lines; requests ordered by their first line, as Logplex would send them."""
    out: list[tuple[int, int, list[bytes]]] = []
    for a in range(len(APPS)):
        idx = np.flatnonzero(ds.app == a)
        for lo in range(0, len(idx), per_body):
            chunk = idx[lo : lo + per_body]
            out.append((int(chunk[0]), a, [ds.lines[i] for i in chunk]))
    out.sort(key=lambda t: t[0])
    return [(a, frames) for _, a, frames in out]


def drain_body(frames: list[bytes]) -> bytes:
    """RFC 6587 octet counting, as tests/drains.body does."""
    return b"".join(b"%d %s" % (len(f), f) for f in frames)


def line_protocol(ds: Dataset, per_batch: int) -> list[bytes]:
    """InfluxDB points in file order: measurement router, tags app and process_type,
    fields service_ms (float) and status (integer), microsecond timestamps."""
    rows = [
        b"router,app=%s,process_type=web service_ms=%d,status=%di %d" % (APPS[a].encode(), s, st, t)
        for a, s, st, t in zip(
            ds.app.tolist(), ds.service.tolist(), ds.status.tolist(), ds.ts_us.tolist(), strict=True
        )
    ]
    return [b"\n".join(rows[i : i + per_batch]) for i in range(0, len(rows), per_batch)]


def truth(ds: Dataset) -> dict[tuple[str, int], Truth]:
    """Exact answers per (app, minute start ms), from the generated columns."""
    minute = ds.ts_us // 1000 // MINUTE_MS * MINUTE_MS
    out: dict[tuple[str, int], Truth] = {}
    for a, name in enumerate(APPS):
        mask = ds.app == a
        mins, svc, st = minute[mask], ds.service[mask], ds.status[mask]
        for m in np.unique(mins):
            sel = mins == m
            v = np.sort(svc[sel].astype(np.float64))
            n = len(v)
            classes, counts = np.unique(st[sel] // 100, return_counts=True)
            out[(name, int(m))] = Truth(
                count=n,
                sum=float(v.sum()),
                p95_nearest=float(v[math.floor(n * 95.0 / 100.0 + 0.5) - 1]),
                p95_lower=float(v[math.floor(0.95 * (n - 1))]),
                by_class={str(c): int(k) for c, k in zip(classes, counts, strict=True)},
            )
    return out


def minute_label(ms: int) -> str:
    """A minute as the router line's timestamp prefix, `2026-11-21T10:00`."""
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(ms // 1000))


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def parse_iso(text: str) -> int:
    """`2026-11-21T10:00:00Z` as epoch ms."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")) * 1000
