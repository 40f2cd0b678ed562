"""Every role can be watched from outside: rollup, sink, retry and alerts serve
/metrics and /healthz on their --port, each /metrics shows what that role does (not the
others' counters at zero), consumer lag per group and the rollup's event-time lag."""

from __future__ import annotations

import json
import re
import time
import urllib.request

from tests.support import drains
from tests.support.roles import Deployment, post_until_accepted, wait_http


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def value(text: str, series: str) -> float | None:
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return None if m is None else float(m.group(1))


def test_each_role_serves_its_own_metrics_and_health(deployment: Deployment) -> None:
    roles, _, _, ingress_port, api_port = deployment
    shop = roles.create_app("shop")
    ports = {role: drains.free_port() for role in ("rollup", "sink", "retry", "alerts")}
    roles.start("ingress", "--port", str(ingress_port))
    roles.start("api", "--port", str(api_port))
    for role, port in ports.items():
        roles.start(*(["alerts", "run"] if role == "alerts" else [role]), "--port", str(port))
    for port in (ingress_port, api_port, *ports.values()):
        wait_http(f"http://127.0.0.1:{port}", roles)
    ingress = drains.Server(
        f"http://127.0.0.1:{ingress_port}", roles.tmp, roles.procs["ingress"], roles.tmp
    )
    now = int(time.time() * 1000)
    lines = [drains.router(now - 2000 + i, 40, 200) for i in range(50)]
    assert post_until_accepted(ingress, shop["drain_secret"], lines) == 204
    deadline = time.monotonic() + 30
    while True:  # lag is sampled every 5 s
        rollup = scrape(ports["rollup"])
        lag = value(rollup, "drainpipe_rollup_event_time_lag_seconds")
        if lag is not None and value(rollup, 'drainpipe_consumer_lag_messages{group="rollup"}'):
            break
        if value(rollup, 'drainpipe_consumer_lag_messages{group="rollup"}') == 0 and lag:
            break
        assert time.monotonic() < deadline, rollup
        time.sleep(0.5)
    assert 0 <= lag < 60
    own = {
        "rollup": "drainpipe_rollup_summaries_flushed_total",
        "sink": "drainpipe_sink_summaries_written_total",
        "retry": "drainpipe_retry_messages_stored_total",
        "alerts": 'drainpipe_consumer_lag_messages{group="alerts"}',
    }
    for role, port in ports.items():
        text = scrape(port)
        assert own[role] in text, (role, text)
        if role in ("rollup", "sink"):  # the one member of its group holds all of it
            deadline = time.monotonic() + 30  # sampled with the lag, every 5 s
            while True:
                whole = value(text, f'drainpipe_consumer_group_partitions{{group="{role}"}}')
                held = value(text, f'drainpipe_consumer_partitions{{group="{role}"}}')
                if (whole and held == whole) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
                text = scrape(port)
            assert whole and held == whole, (role, whole, held)
        assert "drainpipe_drain_requests_total" not in text, role  # ingress's, not this role's
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            report = json.loads(r.read())
        assert r.status == 200 and report["status"] == "ok", (role, report)
        stage = "alerts" if role == "alerts" else role
        assert stage in report["stages"], (role, report)
    front = scrape(ingress_port)
    assert "drainpipe_drain_requests_total" in front
    assert "drainpipe_rollup_" not in front and "drainpipe_sink_" not in front
    api = scrape(api_port)
    assert "drainpipe_rollup_" not in api and "drainpipe_drain_" not in api
    status, _ = drains.Server(f"http://127.0.0.1:{api_port}", roles.tmp, roles.procs["api"],
                              roles.tmp).get("/api/v1/apps/shop", shop["api_token"])  # fmt: skip
    assert status == 200
    timed = scrape(api_port)
    assert 'drainpipe_http_responses_total{route="/api/v1/apps/{name}",status="2xx"} 1.0' in timed
    assert 'drainpipe_http_request_seconds_count{route="/api/v1/apps/{name}"} 1.0' in timed
