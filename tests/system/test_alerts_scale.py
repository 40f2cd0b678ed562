"""The `alerts` role on a Kafka-protocol broker, on a clock the test moves through a file:
ingress and rollup roles feed it `drainpipe simulate` traffic, and a throughput floor
fires, reminds and resolves once each on a webhook, Slack and email across a kill -9 and
restart of the role."""

from __future__ import annotations

import signal

from drainpipe.alert.state import postgres_state
from drainpipe.model import iso
from tests.support import alerting, drains
from tests.support.alerting import Scenario, scenario
from tests.support.roles import Deployment, wait_http

__all__ = ["scenario"]  # the fixture


def test_the_alerts_role_fires_reminds_and_resolves_once_across_a_kill_9(
    deployment: Deployment, scenario: Scenario
) -> None:
    roles, _, shards, ingress_port, api_port = deployment
    roles.env.update(scenario.env())
    shop = roles.create_app("shop")
    rule = alerting.add_rule(scenario, roles.env, "--postgres")
    roles.start("ingress", "--port", str(ingress_port))
    roles.start("rollup")
    roles.start("alerts", "run")
    roles.start("api", "--port", str(api_port))
    ingress, api = (
        drains.Server(f"http://127.0.0.1:{port}", roles.tmp, roles.procs[role], roles.tmp)
        for role, port in (("ingress", ingress_port), ("api", api_port))
    )
    wait_http(ingress.url, roles)
    wait_http(api.url, roles)

    def kill_and_restart() -> None:
        roles.procs["alerts"].send_signal(signal.SIGKILL)
        assert roles.procs["alerts"].wait(10) == -signal.SIGKILL
        roles.start("alerts", "run")

    state = postgres_state(shards[0])  # the role's database, shared with the api role
    try:
        alerting.run(
            scenario, state, f"{ingress.url}/logs", shop["drain_secret"],
            rule["id"], roles.env, kill_and_restart, lambda: roles.log("alerts"),
        )  # fmt: skip
    finally:
        state.close()
    assert roles.procs["alerts"].poll() is None, roles.log("alerts")[-3000:]
    alerting.check(scenario, rule)
    # The api role serves the rules and history the alerts role judged.
    status, listed = api.get("/api/v1/apps/shop/alerts", shop["api_token"])
    assert status == 200 and isinstance(listed, dict), listed
    assert [r["id"] for r in listed["rules"]] == [rule["id"]]
    assert (
        listed["rules"][0]["slack"]
        == "http://127.0.0.1:" + scenario.slack.url.split(":")[2].split("/")[0] + "/…"
    )
    window = f"start={iso(alerting.T0)}&end={iso(alerting.T0 + 3_600_000)}"
    status, history = api.get(f"/api/v1/apps/shop/alerts/history?{window}", shop["api_token"])
    assert status == 200 and isinstance(history, dict), history
    assert [h["state"] for h in history["history"]] == ["firing", "reminder", "resolved"]
