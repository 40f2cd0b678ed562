"""Alerts end to end in `drainpipe up`, in processes, on a clock the test moves through a
file: simulated traffic in, a throughput floor's firing, reminder and recovery out on a
webhook, a Slack receiver and email, across a kill -9 and restart of `up`."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from drainpipe.alert.state import AlertState
from drainpipe.model import iso
from tests.support import alerting, drains
from tests.support.alerting import Scenario, scenario

__all__ = ["scenario"]  # the fixture


def test_up_fires_reminds_and_resolves_once_across_a_kill_9(
    tmp_path: Path, scenario: Scenario
) -> None:
    env = {**os.environ, **scenario.env()}
    data = tmp_path / "data"
    port = drains.free_port()
    flags = ("--flush-interval", "0.1", "--workers", "1")
    app = drains.create_app(data, "shop")  # before the clock file matters: no dates kept
    rule = alerting.add_rule(scenario, env, "--data-dir", str(data))
    servers = [drains.start(data, port, *flags, env=scenario.env())]

    def kill_and_restart() -> None:
        servers[-1].proc.send_signal(signal.SIGKILL)
        servers[-1].proc.wait(10)
        servers.append(drains.start(data, port, *flags, env=scenario.env()))

    state = AlertState(data / "alerts.sqlite")
    try:
        alerting.run(
            scenario, state, f"http://127.0.0.1:{port}/logs",
            app["drain_secret"], rule["id"], env, kill_and_restart,
            lambda: servers[-1].log_path.read_text(errors="replace"),
        )  # fmt: skip
        alerting.check(scenario, rule)
        status, history = servers[-1].get(
            f"/api/v1/apps/shop/alerts/history?start={iso(alerting.T0)}"
            f"&end={iso(alerting.T0 + 3_600_000)}",
            app["api_token"],
        )
        assert status == 200, history
        assert isinstance(history, dict)
        assert [(h["state"], h["minute"], h["error"]) for h in history["history"]] == [
            (state, iso(alerting.T0 + minute * 60_000), None)
            for state, minute in (("firing", 7), ("reminder", 12), ("resolved", 17))
        ]
    finally:
        state.close()
        for s in servers:
            if s.proc.poll() is None:
                drains.stop(s)
