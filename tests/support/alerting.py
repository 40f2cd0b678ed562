"""One alerting scenario for a deployment in processes, on a clock the test moves:
`drainpipe simulate` traffic stops, a throughput floor fires, reminds and resolves on a
webhook, a Slack receiver and email, and the evaluator is killed with kill -9 between
the firing and the reminder. The embedded (`drainpipe up`) and Kafka tests share it."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from drainpipe.alert.state import AlertState
from drainpipe.model import MINUTE_MS, iso
from tests.alert.test_channels import Inbox
from tests.alert.test_worker import Receiver
from tests.support import drains
from tests.support.waiting import until

T0 = 1_795_017_600_000  # a minute's start; every process reads it from the clock file
TRAFFIC = (*range(0, 3), *range(13, 18))  # the minutes with traffic; quiet from 3 to 12
FIRING, REMINDER, RESOLVED = 7, 12, 17  # 5 quiet minutes, then 5 more, then 5 with traffic
KILL_AT = 9  # between the firing and the reminder


@dataclass
class Scenario:
    clock_file: Path
    hook: Receiver = field(default_factory=Receiver)
    slack: Receiver = field(default_factory=Receiver)
    inbox: Inbox = field(default_factory=Inbox)

    def __post_init__(self) -> None:
        self.smtp = Controller(self.inbox, hostname="127.0.0.1", port=drains.free_port())
        self.smtp.start()
        self.set_minute(0)

    def env(self) -> dict[str, str]:
        """What every process of the deployment is started with."""
        return {
            "DRAINPIPE_CLOCK_FILE": str(self.clock_file),
            "DRAINPIPE_ALERT_DELAY_S": "0",  # a minute is judged as soon as it ends
            "DRAINPIPE_SMTP_HOST": "127.0.0.1",
            "DRAINPIPE_SMTP_PORT": str(self.smtp.port),
            "DRAINPIPE_SMTP_STARTTLS": "0",
            "DRAINPIPE_ALERT_ALLOW_NETS": "127.0.0.0/8",  # the receivers run here
        }

    def set_minute(self, minute: int, second: int = 5) -> None:
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(str(T0 + minute * MINUTE_MS + second * 1000))
        tmp.replace(self.clock_file)  # a reader never sees half a time

    def close(self) -> None:
        self.hook.close()
        self.slack.close()
        self.smtp.stop()


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    s = Scenario(tmp_path / "clock")
    yield s
    s.close()


def add_rule(scenario: Scenario, env: dict[str, str], *where: str) -> dict[str, Any]:
    added = subprocess.run(
        [sys.executable, "-m", "drainpipe.cli", "alerts", "add", "shop",
         "--metric", "throughput_below", "--threshold", "10", "--sensitivity", "5",
         "--renotify", "5", "--webhook", scenario.hook.url, "--slack", scenario.slack.url,
         "--email", "oncall@example.com", *where],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return dict(json.loads(added.stdout))


def simulate(url: str, secret: str, minute: int, env: dict[str, str]) -> None:
    """A second of simulated traffic early in the minute (the clock stands 5 s into it)."""
    out = subprocess.run(
        [sys.executable, "-m", "drainpipe.cli", "simulate", "--url", url, "--secret", secret,
         "--start", iso(T0 + minute * MINUTE_MS + 1000), "--lines", "400", "--rate", "1000",
         "--seed", str(minute)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def wait(what: str, ok: Callable[[], bool], logs: Callable[[], str], timeout_s: float = 60) -> None:
    until(ok, what, timeout_s, lambda: logs()[-3000:])


def run(
    scenario: Scenario,
    state: AlertState,
    drain_url: str,
    secret: str,
    rule_id: str,
    env: dict[str, str],
    kill_and_restart: Callable[[], None],
    logs: Callable[[], str],
) -> None:
    """Walk the clock through minutes 0-17, feeding traffic and waiting for each minute
    to be read and judged (in the evaluator's database, `state`); kill -9 the evaluator
    at KILL_AT."""

    def read(minute: int) -> bool:
        at = T0 + minute * MINUTE_MS
        return (state.values(rule_id, at, at).get(at) or 0) >= 10

    def judged(minute: int) -> bool:
        s = state.state(rule_id)
        return s is not None and (s.judged_ms or 0) >= T0 + minute * MINUTE_MS

    def delivered(count: int) -> bool:
        got = (scenario.hook.got, scenario.slack.got, scenario.inbox.messages)
        return min(len(g) for g in got) >= count

    for minute in range(RESOLVED + 2):
        scenario.set_minute(minute)
        if minute:
            wait(f"minute {minute - 1} judged", partial(judged, minute - 1), logs)
        if minute - 1 == FIRING:
            wait("the firing notice on every channel", lambda: delivered(1), logs)
        if minute == KILL_AT:
            kill_and_restart()
        if minute in TRAFFIC:
            simulate(drain_url, secret, minute, env)
            wait(f"minute {minute} read", partial(read, minute), logs)
    wait("the resolved notice on every channel", lambda: delivered(3), logs)
    time.sleep(1.0)  # nothing more comes


def check(scenario: Scenario, rule: dict[str, Any]) -> None:
    """Exactly one firing, one reminder and one recovery on each channel, signed."""
    bodies = scenario.hook.bodies()
    assert [(b["state"], b["minute"]) for b in bodies] == [
        ("firing", iso(T0 + FIRING * MINUTE_MS)),
        ("reminder", iso(T0 + REMINDER * MINUTE_MS)),
        ("resolved", iso(T0 + RESOLVED * MINUTE_MS)),
    ]
    assert {(b["app"], b["process_type"], b["rule_id"], b["metric"], b["threshold"])
            for b in bodies} == {("shop", "web", rule["id"], "throughput_below", 10)}  # fmt: skip
    assert [b["value"] for b in bodies][:2] == [0, 0] and bodies[2]["value"] >= 10
    for headers, raw in scenario.hook.got:
        want = hmac.new(rule["webhook_secret"].encode(), raw, hashlib.sha256).hexdigest()
        assert headers["x-drainpipe-signature"] == f"sha256={want}"
    slack = [json.loads(raw)["text"] for _, raw in scenario.slack.got]
    assert [t.split("]")[0] for t in slack] == ["[FIRING", "[STILL FIRING", "[RESOLVED"]
    assert [m["Subject"].split("]")[0] for _, m in scenario.inbox.messages] == [
        "[FIRING", "[STILL FIRING", "[RESOLVED",
    ]  # fmt: skip
    assert {tuple(rcpt) for rcpt, _ in scenario.inbox.messages} == {("oncall@example.com",)}
