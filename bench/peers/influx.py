"""InfluxDB 1.x (Debian's package) as a subprocess on loopback, fed line protocol.

`influxd run -config` with a generated config: HTTP and the RPC service on free
127.0.0.1 ports, meta/data/wal in the run's temporary directory, usage reporting,
self-monitoring, subscribers, continuous queries and every other listener off. Writes
are acknowledged after InfluxDB's WAL write (wal-fsync-delay 0s: fsync per write).
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.peers.proc import free_port

DB = "peers"
CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{dir}/meta"
  logging-enabled = false
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[retention]
  enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  pprof-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
"""


@dataclass
class MinuteRow:
    count: int
    mean: float
    p95: float


def available() -> bool:
    return shutil.which("influxd") is not None


def version() -> str:
    out = subprocess.run(["influxd", "version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


class Influxd:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "influxdb.conf"
        conf.write_text(CONFIG.format(dir=workdir, port=self.port, rpc_port=free_port()))
        self.log = open(workdir / "influxd.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["influxd", "run", "-config", str(conf)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited {self.proc.returncode}: see {self.log.name}")
            try:
                status, _ = self._request("GET", "/ping")
                if status == 204:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("influxd did not answer /ping in 30 s")
            time.sleep(0.05)
        status, body = self._request(
            "POST", "/query?" + urllib.parse.urlencode({"q": f"CREATE DATABASE {DB}"})
        )
        if status != 200:
            raise RuntimeError(f"CREATE DATABASE: {status} {body[:500]!r}")

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def write(self, batches: list[bytes], connections: int, timeout_s: float = 600) -> int:
        """POST every batch once over `connections` keep-alive connections; points acked."""
        deadline = time.monotonic() + timeout_s
        path = f"/write?db={DB}&precision=u"

        def worker(mine: list[bytes]) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            acked = 0
            try:
                for b in mine:
                    if time.monotonic() > deadline:
                        break
                    conn.request("POST", path, body=b, headers={"Content-Type": "text/plain"})
                    resp = conn.getresponse()
                    text = resp.read()
                    if resp.status != 204:
                        raise RuntimeError(f"/write answered {resp.status}: {text[:300]!r}")
                    acked += b.count(b"\n") + 1
            finally:
                conn.close()
            return acked

        with ThreadPoolExecutor(connections) as pool:
            return sum(pool.map(worker, [batches[k::connections] for k in range(connections)]))

    def per_minute(self, app: str, start_ms: int, end_ms: int) -> dict[int, MinuteRow]:
        q = (
            "SELECT count(service_ms), mean(service_ms), percentile(service_ms, 95) "
            f"FROM router WHERE app = '{app}' AND time >= {start_ms * 1_000_000} "
            f"AND time < {end_ms * 1_000_000} GROUP BY time(1m), app fill(none)"
        )
        status, body = self._request(
            "GET", "/query?" + urllib.parse.urlencode({"db": DB, "epoch": "ms", "q": q})
        )
        if status != 200:
            raise RuntimeError(f"query answered {status}: {body[:500]!r}")
        doc = json.loads(body)
        out: dict[int, MinuteRow] = {}
        for result in doc["results"]:
            if "error" in result:
                raise RuntimeError(result["error"])
            for series in result.get("series", []):
                for t, count, mean, p95 in series["values"]:
                    out[int(t)] = MinuteRow(int(count), float(mean), float(p95))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
