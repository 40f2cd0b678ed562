"""One retried frame, POSTed to two ingress processes on Kafka (and to one of them again
after its restart), is counted once: the rollup drops the later copies of its batches."""

from __future__ import annotations

import signal
import time

from tests.support import drains
from tests.support.roles import Deployment, post_until_accepted, wait_http


def test_a_frame_retried_on_two_ingress_processes_counts_once(deployment: Deployment) -> None:
    roles, _, _, port_a, api_port = deployment
    port_b = drains.free_port()
    shop = roles.create_app("shop")
    roles.start("ingress", "--port", str(port_a), name="ingress-a")
    roles.start("ingress", "--port", str(port_b), name="ingress-b")
    for role in ("rollup", "sink"):
        roles.start(role, "--port", str(drains.free_port()))
    roles.start("api", "--port", str(api_port))
    a, b, api = (
        drains.Server(f"http://127.0.0.1:{port}", roles.tmp, roles.procs[name], roles.tmp)
        for name, port in (("ingress-a", port_a), ("ingress-b", port_b), ("api", api_port))
    )
    for server in (a, b, api):
        wait_http(server.url, roles)
    now = int(time.time() * 1000)
    line = drains.router(now - 1000, 40, 200)
    retried = {"Logplex-Frame-Id": "dup-frame-1"}
    for ingress in (a, b):
        assert ingress.post(shop["drain_secret"], drains.body([line]), 1, retried) == 204
    roles.procs["ingress-b"].send_signal(signal.SIGKILL)
    roles.procs["ingress-b"].wait(10)
    roles.start("ingress", "--port", str(port_b), name="ingress-b")
    wait_http(b.url, roles)
    assert b.post(shop["drain_secret"], drains.body([line]), 1, retried) == 204
    other = drains.router(now - 900, 40, 200)  # a new frame: counted
    assert post_until_accepted(a, shop["drain_secret"], [other]) == 204
    lo = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(now / 1000 - 120))
    hi = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(now / 1000 + 120))
    deadline = time.monotonic() + 30
    total = -1
    while time.monotonic() < deadline:
        status, body = api.get(
            f"/api/v1/apps/shop/metrics/router.status?start={lo}&end={hi}", shop["api_token"]
        )
        assert status == 200, body
        assert isinstance(body, dict)
        total = sum(p["total"] for s in body["series"] for p in s["points"])
        if total == 2:
            break
        time.sleep(0.3)
    time.sleep(1.0)  # and it stays there
    status, body = api.get(
        f"/api/v1/apps/shop/metrics/router.status?start={lo}&end={hi}", shop["api_token"]
    )
    assert isinstance(body, dict)
    assert sum(p["total"] for s in body["series"] for p in s["points"]) == 2 == total
