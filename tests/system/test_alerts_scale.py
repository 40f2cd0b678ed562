"""The `alerts` role on a Kafka-protocol broker, on a clock the test moves through a file:
ingress and rollup roles feed it `drainpipe simulate` traffic, and a throughput floor
fires, reminds and resolves once each on a webhook, Slack and email across a kill -9 and
restart of the role."""

from __future__ import annotations

import signal

from tests.support import alerting, drains
from tests.support.alerting import Scenario, scenario
from tests.support.roles import Deployment, wait_http

__all__ = ["scenario"]  # the fixture


def test_the_alerts_role_fires_reminds_and_resolves_once_across_a_kill_9(
    deployment: Deployment, scenario: Scenario
) -> None:
    roles, _, _, ingress_port, _ = deployment
    data = roles.tmp / "alerts-data"
    roles.env.update(scenario.env(), DRAINPIPE_DATA_DIR=str(data))
    shop = roles.create_app("shop")
    rule = alerting.add_rule(scenario, roles.env, "--postgres")
    roles.start("ingress", "--port", str(ingress_port))
    roles.start("rollup")
    roles.start("alerts", "run")
    ingress = drains.Server(
        f"http://127.0.0.1:{ingress_port}", roles.tmp, roles.procs["ingress"], roles.tmp
    )
    wait_http(ingress.url, roles)

    def kill_and_restart() -> None:
        roles.procs["alerts"].send_signal(signal.SIGKILL)
        assert roles.procs["alerts"].wait(10) == -signal.SIGKILL
        roles.start("alerts", "run")

    alerting.run(
        scenario, data / "alerts.sqlite", f"{ingress.url}/logs", shop["drain_secret"],
        rule["id"], roles.env, kill_and_restart, lambda: roles.log("alerts"),
    )  # fmt: skip
    assert roles.procs["alerts"].poll() is None, roles.log("alerts")[-3000:]
    alerting.check(scenario, rule)
