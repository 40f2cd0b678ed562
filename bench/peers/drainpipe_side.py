"""drainpipe on the same data: parse+batch on one core, and `drainpipe up` over HTTP.

The end-to-end run posts every drain body of the file exactly once (Logplex headers and
framing, over --connections keep-alive connections taking the next body of the file in
turn), counts only 204s (fsynced in the embedded log), then reads the per-minute
answers back from the API once every line is visible. Requests are prebuilt and sent
with bench.drain_client, as bench.ingest does, each body once instead of cycling for a
fixed time.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import multiprocessing as mp
import os
import queue
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

from bench.drain_client import DrainClient, logplex_request
from bench.peers import data, proc
from drainpipe.ingest import records
from tests.support import drains

MAX_FUTURE_MS = 300_000


@dataclass
class MinutePoint:
    count: int
    mean: float
    p95: float
    by_class: dict[str, int]


@dataclass
class EndToEnd:
    ack_seconds: float  # first POST to last 204
    visible_seconds: float  # first POST to every line visible through the API
    acked_lines: int
    cpu_s_ack: float  # server tree, during ack_seconds
    cpu_s_visible: float  # server tree, during visible_seconds
    peak_rss_mb: float  # sum of the server tree's VmHWM
    non_204: int
    per_client: list[int]  # lines each connection got acknowledged
    answers: dict[tuple[str, int], MinutePoint]


def parse_once(frames: list[tuple[int, list[bytes]]], now_ms: int) -> tuple[float, float, int]:
    """(seconds, CPU seconds, router lines) for records.build over every request's frames."""
    c0, t0 = time.process_time(), time.perf_counter()
    routed = 0
    for a, lines in frames:
        routed += records.build(data.APPS[a], lines, now_ms, MAX_FUTURE_MS).lines["router"]
    return time.perf_counter() - t0, time.process_time() - c0, routed


def parse_on_one_core(
    frames: list[tuple[int, list[bytes]]], now_ms: int
) -> tuple[float, float, int]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        return parse_once(frames, now_ms)
    finally:
        os.sched_setaffinity(0, before)


def _client(
    url: str,
    requests: list[tuple[bytes, int]],
    next_body: Synchronized[int],
    go: EventType,
    deadline: float,
    out: mp.Queue[tuple[int, int]],
) -> None:
    """POST bodies in file order, each once: the next one not yet taken by any client, so
    the requests in flight are always the next few of the file (a client on a busier
    HTTP worker just takes fewer), as they must be for the rollup's 5-minute lateness.
    `requests` are the prebuilt requests (bench.drain_client) and their line counts."""
    conn = DrainClient(url)
    ok = bad = 0
    go.wait(60)
    while time.time() < deadline:
        with next_body.get_lock():
            i = next_body.value
            next_body.value += 1
        if i >= len(requests):
            break
        request, count = requests[i]
        for _ in range(3):  # Logplex tries a frame 3 times on 429/5xx
            if conn.send(request) == 204:
                ok += count
                break
            bad += 1
    conn.close()
    out.put((ok, bad))


JsonObject = dict[str, Any]  # one decoded JSON object of the API, e.g. a point: "t" and numbers


def _get(url: str, path: str, token: str) -> object:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status} {body[:300]!r}")
        return json.loads(body)
    finally:
        conn.close()


def _points(
    url: str, app: str, token: str, metric: str, start: int, end: int
) -> dict[int, JsonObject]:
    q = urllib.parse.urlencode(
        {"start": data.iso(start), "end": data.iso(end), "step": "60", "process_type": "web"}
    )
    body = _get(url, f"/api/v1/apps/{app}/metrics/{metric}?{q}", token)
    out: dict[int, JsonObject] = {}
    for series in body["series"]:  # type: ignore[index]
        for p in series["points"]:
            out[data.parse_iso(p["t"])] = p
    return out


def answers(
    url: str, tokens: dict[str, str], ds: data.Dataset
) -> dict[tuple[str, int], MinutePoint]:
    out = {}
    for app, token in tokens.items():
        lat = _points(url, app, token, "router.latency", ds.start_ms, ds.end_ms)
        st = _points(url, app, token, "router.status", ds.start_ms, ds.end_ms)
        for m, p in lat.items():
            classes = {k[0]: int(v) for k, v in st.get(m, {}).items() if k.endswith("xx")}
            out[(app, m)] = MinutePoint(int(p["count"]), float(p["mean"]), float(p["p95"]), classes)
    return out


def end_to_end(
    ds: data.Dataset,
    bodies: list[tuple[int, bytes, int]],
    connections: int,
    timeout_s: float = 900,
    settle_s: float = 120,
) -> EndToEnd:
    n = len(ds.lines)
    with tempfile.TemporaryDirectory(prefix="peers-drainpipe-") as tmp:
        data_dir = Path(tmp)
        creds = [drains.create_app(data_dir, name) for name in data.APPS]
        auth = [
            "Basic " + base64.b64encode(f"drain:{c['drain_secret']}".encode()).decode()
            for c in creds
        ]
        tokens = {c["name"]: c["api_token"] for c in creds}
        server = drains.start(data_dir, None)  # default HTTP worker processes
        try:
            pid = server.proc.pid
            deadline = time.time() + timeout_s
            host = server.url.removeprefix("http://")
            requests = [
                (logplex_request(host, body, count, auth[a], hashlib.md5(body).hexdigest()), count)
                for a, body, count in bodies
            ]
            q: mp.Queue[tuple[int, int]] = mp.Queue()
            next_body, go = mp.Value("l", 0), mp.Event()
            clients = [
                mp.Process(target=_client, args=(server.url, requests, next_body, go, deadline, q))
                for _ in range(connections)
            ]
            for c in clients:
                c.start()
            time.sleep(0.5)  # let every client reach go.wait()
            cpu0, t0 = proc.cpu_s(pid), time.perf_counter()
            go.set()
            results: list[tuple[int, int]] = []
            while len(results) < len(clients):
                try:
                    results.append(q.get(timeout=1))
                except queue.Empty:
                    if time.time() > deadline + 60 or not any(c.is_alive() for c in clients):
                        raise RuntimeError(
                            f"{len(clients) - len(results)} client(s) ended without a result"
                        ) from None
            ack_s, cpu_ack = time.perf_counter() - t0, proc.cpu_s(pid) - cpu0
            for c in clients:
                c.join(30)
            visible, got = 0, {}
            settle = min(deadline, time.time() + settle_s)
            while time.time() < settle:
                got = answers(server.url, tokens, ds)
                visible = sum(p.count for p in got.values())
                if visible >= n:
                    break
                time.sleep(0.25)
            visible_s, cpu_visible = time.perf_counter() - t0, proc.cpu_s(pid) - cpu0
            rss = proc.peak_rss_mb(pid)
            if visible != n:
                counters = [
                    line
                    for line in server.text("/metrics").splitlines()
                    if line.startswith("drainpipe_") and not line.endswith(" 0.0")
                ]
                print(
                    f"  drainpipe: {visible} of {n} lines visible through the API "
                    f"{settle_s:.0f} s after the last 204; counters: {counters}",
                    flush=True,
                )
        finally:
            drains.stop(server)
    return EndToEnd(
        ack_seconds=ack_s,
        visible_seconds=visible_s,
        acked_lines=sum(r[0] for r in results),
        cpu_s_ack=cpu_ack,
        cpu_s_visible=cpu_visible,
        peak_rss_mb=rss,
        non_204=sum(r[1] for r in results),
        per_client=sorted((r[0] for r in results), reverse=True),
        answers=got,
    )


def http_bodies(
    frames: list[tuple[int, list[bytes]]],
) -> list[tuple[int, bytes, int]]:
    return [(a, data.drain_body(lines), len(lines)) for a, lines in frames]
