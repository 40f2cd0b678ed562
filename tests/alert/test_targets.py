"""Where notices may go: public addresses only unless allowed, checked when a rule is
made and again, with the address pinned, at every send; redirects not followed; the
history's error says what kind of failure, not what the network behind it looks like."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from drainpipe.alert import manage, notify, targets
from drainpipe.alert.rules import Rule, RuleError, metric
from drainpipe.alert.worker import AlertWorker
from drainpipe.clock import FixedClock
from drainpipe.store.apps import sqlite_registry
from tests.alert.test_worker import HERE, T0, Outbox, Receiver, outbox

__all__ = ["outbox"]  # the fixture

BLOCKED = [
    "127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
]  # fmt: skip


@pytest.mark.parametrize("raw", BLOCKED)
def test_private_loopback_link_local_and_mapped_addresses_are_refused(raw: str) -> None:
    address = ipaddress.ip_address(raw)
    assert not targets.allowed(address, ())
    assert targets.allowed(address, (ipaddress.ip_network("0.0.0.0/0"),
                                     ipaddress.ip_network("::/0")))  # fmt: skip


@pytest.mark.parametrize("raw", ["93.184.215.14", "2606:4700::6810:85e5", "8.8.8.8"])
def test_public_addresses_are_allowed(raw: str) -> None:
    assert targets.allowed(ipaddress.ip_address(raw), ())


def test_an_allowed_network_lets_exactly_its_addresses_through() -> None:
    nets = (ipaddress.ip_network("10.0.0.0/8"),)
    assert targets.allowed(ipaddress.ip_address("10.9.9.9"), nets)
    assert not targets.allowed(ipaddress.ip_address("192.168.0.1"), nets)


def test_a_name_is_refused_when_any_address_it_resolves_to_is_private() -> None:
    def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]  # round-robin DNS with one inside

    with pytest.raises(targets.Blocked, match=r"10\.0\.0\.7"):
        targets.address_for("hooks.example.com", 443, (), resolve)
    assert targets.address_for("h", 443, (ipaddress.ip_network("10.0.0.0/8"),), resolve) == (
        "93.184.215.14"
    )


def test_making_a_rule_refuses_a_literal_private_address_or_localhost(tmp_path: Path) -> None:
    registry = sqlite_registry(tmp_path / "apps.sqlite")
    try:
        registry.create("shop")
        for url in ("http://169.254.169.254/latest", "http://localhost:8080/", "http://[::1]/"):
            with pytest.raises(RuleError, match="DRAINPIPE_ALERT_ALLOW_NETS"):
                manage.make(registry, "shop", "load", 4, webhook=url)
        with pytest.raises(RuleError, match=r"slack: 10\.0\.0\.1"):
            manage.make(registry, "shop", "load", 4, slack="https://10.0.0.1/services/x")
        manage.make(registry, "shop", "load", 4, webhook="https://hooks.example.com/x")
        manage.make(registry, "shop", "load", 4, webhook="http://localhost:9/", nets=HERE)
    finally:
        registry.close()


def test_a_rule_shows_receiver_urls_masked_unless_revealed() -> None:
    rule = Rule(
        "r", "shop", "o", metric("load"), 4, webhook="https://u:p@h.example.com/in?key=s3cret",
        slack="https://hooks.slack.com/services/T0/B0/XXXX",
    )  # fmt: skip
    shown = manage.shown(rule, T0)
    assert (shown["webhook"], shown["slack"]) == (
        "https://h.example.com/…", "https://hooks.slack.com/…",
    )  # fmt: skip
    assert manage.shown(rule, T0, reveal=True)["slack"] == rule.slack


def test_a_send_to_a_private_address_is_refused_at_send_time_and_not_made(
    outbox: Outbox,
) -> None:
    """A rule made while 127.0.0.0/8 was allowed, judged by a process that does not
    allow it: the check at send time holds, and nothing reaches the receiver."""
    receiver = Receiver()
    try:
        outbox.firing(receiver.url)
        worker = AlertWorker(outbox.bus, outbox.state, FixedClock(T0))  # no networks allowed
        worker._refresh()
        worker._deliver(T0)
        worker._deliver(T0 + 3_600_000)
        assert receiver.got == []
        (refused,) = outbox.state.history("shop", T0, T0 + 60_000)
        assert refused.sent_ms is None and "127.0.0.1 is not a public address" in (
            refused.error or ""
        )
        counted = worker.metrics.render().decode()
        assert 'drainpipe_alert_notices_total{channel="webhook",outcome="refused"} 1.0' in counted
    finally:
        receiver.close()


def test_a_redirect_is_not_followed_and_is_final() -> None:
    moved = Receiver(302)
    try:
        rule = Rule("r", "shop", "o", metric("load"), 4, webhook=moved.url)
        with pytest.raises(notify.Final4xx, match="redirects are not followed"):
            notify.webhook(rule, {"delivery": "r:test:0:webhook"}, HERE)
    finally:
        moved.close()


def test_the_history_says_what_kind_of_failure_not_the_networks_details() -> None:
    assert notify.reason(ConnectionRefusedError(111, "Connection refused")) == "could not connect"
    assert notify.reason(TimeoutError("timed out")) == "timed out"
    assert notify.reason(notify.Unanswered("https://h answered 503")) == "https://h answered 503"


@pytest.mark.parametrize("url", ["http://[::1", "http://h.example.com:99999/", "https:///x"])
def test_a_url_that_does_not_parse_is_a_bad_rule_not_a_crash(tmp_path: Path, url: str) -> None:
    registry = sqlite_registry(tmp_path / "apps.sqlite")
    try:
        registry.create("shop")
        with pytest.raises(RuleError, match="webhook"):
            manage.make(registry, "shop", "load", 4, webhook=url)
    finally:
        registry.close()
