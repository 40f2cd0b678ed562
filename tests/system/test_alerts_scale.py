"""The `alerts` role on a Kafka-protocol broker: ingress and rollup roles feed it, a rule
fires once to a real webhook receiver, and a kill -9 and restart of the role sends it
no second time."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from tests.alert.test_worker import Receiver
from tests.support import drains
from tests.support.roles import Deployment, post_until_accepted, wait_http


def test_the_alerts_role_fires_once_across_a_kill_9(deployment: Deployment) -> None:
    roles, _, _, ingress_port, _ = deployment
    receiver = Receiver()
    try:
        roles.env["DRAINPIPE_ALERT_DELAY_S"] = "0"  # judge a minute as soon as it ends
        roles.env["DRAINPIPE_DATA_DIR"] = str(roles.tmp / "alerts-data")
        shop = roles.create_app("shop")
        roles.start("ingress", "--port", str(ingress_port))
        roles.start("rollup")
        roles.start("alerts", "run")
        ingress = drains.Server(
            f"http://127.0.0.1:{ingress_port}", roles.tmp, roles.procs["ingress"], roles.tmp
        )
        wait_http(ingress.url, roles)
        # Late in a minute, so that it ends (and is judged) soon after the rule is made.
        while time.time() % 60 < 45:
            time.sleep(0.5)
        added = subprocess.run(
            [sys.executable, "-m", "drainpipe.cli", "alerts", "add", "shop",
             "--metric", "latency_p95", "--threshold", "500", "--sensitivity", "1",
             "--webhook", receiver.url, "--postgres"],
            env=roles.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        rule = json.loads(added.stdout)
        now = int(time.time() * 1000)
        lines = [drains.router(now - 5000 + i * 50, 900, 200) for i in range(40)]
        assert post_until_accepted(ingress, shop["drain_secret"], lines) == 204
        deadline = time.monotonic() + 60
        while not receiver.got and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(receiver.got) == 1, roles.log("alerts")[-3000:]
        roles.procs["alerts"].send_signal(signal.SIGKILL)
        roles.procs["alerts"].wait(10)
        roles.start("alerts", "run")
        time.sleep(8)  # it reads the topics again from its commit and judges what is due
        assert roles.procs["alerts"].poll() is None, roles.log("alerts")[-3000:]
        (body,) = receiver.bodies()
        assert (body["state"], body["rule_id"], body["app"]) == ("firing", rule["id"], "shop")
        assert body["value"] >= 500
    finally:
        receiver.close()
