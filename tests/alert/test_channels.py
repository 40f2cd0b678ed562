"""Notices on each channel, through the CLI a user runs: email over a real local SMTP
server (aiosmtpd), a Slack-compatible body and a signed webhook to a real receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.alert.test_worker import Receiver
from tests.support import drains


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=drains.free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


def cli(
    data: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drainpipe.cli", "alerts", *args, "--data-dir", str(data)],
        capture_output=True, text=True, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_alerts_test_sends_on_every_channel(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    hook, slack = Receiver(), Receiver()
    try:
        drains.create_app(tmp_path, "shop")
        added = cli(
            tmp_path, "add", "shop", "--metric", "error_rate", "--threshold", "2.5",
            "--sensitivity", "1", "--webhook", hook.url, "--slack", slack.url,
            "--email", "ops@example.com", "oncall@example.com",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        rule = json.loads(added.stdout)
        assert rule["metric"] == "error_rate" and rule["unit"] == "%"
        env = {
            "DRAINPIPE_SMTP_HOST": "127.0.0.1",
            "DRAINPIPE_SMTP_PORT": str(port),
            "DRAINPIPE_SMTP_STARTTLS": "0",
            "DRAINPIPE_PUBLIC_URL": "https://m.example.com",
        }
        sent = cli(tmp_path, "test", "shop", rule["id"], env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert [json.loads(line)["channel"] for line in sent.stdout.splitlines()] == [
            "webhook", "slack", "email",
        ]  # fmt: skip
        ((headers, raw),) = hook.got
        body = json.loads(raw)
        assert body["state"] == "test" and body["rule_id"] == rule["id"]
        assert body["dashboard_url"] == "https://m.example.com/apps/shop?window=2h&process_type=web"
        want = hmac.new(rule["webhook_secret"].encode(), raw, hashlib.sha256).hexdigest()
        assert headers["x-drainpipe-signature"] == f"sha256={want}"
        ((_, slack_raw),) = slack.got
        assert "[TEST] shop web: error_rate" in json.loads(slack_raw)["text"]
        ((rcpt, message),) = inbox.messages
        assert rcpt == ["ops@example.com", "oncall@example.com"]
        assert message["Subject"].startswith("[TEST] shop web: error_rate")
        assert "https://m.example.com/apps/shop" in message.get_payload()
    finally:
        hook.close()
        slack.close()


def test_a_bad_rule_is_refused_with_what_to_do(tmp_path: Path) -> None:
    drains.create_app(tmp_path, "shop")
    out = cli(tmp_path, "add", "shop", "--metric", "error_rate", "--threshold", "200")
    assert out.returncode == 2 and "0.5 to 100 (%)" in out.stderr
    out = cli(
        tmp_path, "add", "shop", "--metric", "load", "--threshold", "4", "--webhook", "ftp://x"
    )
    assert out.returncode == 2 and "must be an http:// or https:// URL" in out.stderr
    out = cli(tmp_path, "remove", "shop", "nope")
    assert out.returncode == 2 and "has no rule 'nope'" in out.stderr
    listed = cli(tmp_path, "list", "shop")
    assert listed.returncode == 0 and listed.stdout == ""
