"""`drainpipe alerts add|list|remove|test|run`: an app's threshold rules, from the shell.

Rules live in the data directory's alerts database, which `drainpipe up` reads within
seconds; with `--postgres`, in the scale-out deployment's PostgreSQL, where the `alerts`
role reads them and the `api` role serves them. `add` prints the rule as one JSON
object, with the webhook's signing secret once (it is kept to sign, so it cannot be
shown again: remove and add the rule for a new one). `test` sends a notice in state
`test` on every channel of a rule, now. `run` is the scale-out `alerts` role (see
`service.roles`).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from typing import Any, TextIO

from drainpipe.alert import notify, rules, targets
from drainpipe.alert.manage import make, shown
from drainpipe.alert.rules import Rule, RuleError
from drainpipe.alert.state import AlertState, channels, postgres_state
from drainpipe.clock import SYSTEM, Clock
from drainpipe.config import INSTANCE_ID_HELP, Config
from drainpipe.store.apps import AppRegistry


def add_parser(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="threshold alerts: webhook, Slack or email")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    add = alerts_sub.add_parser("add", help="add a rule to an app; prints it as JSON")
    add.add_argument("app")
    add.add_argument("--metric", required=True, help=rules.METRIC_HELP)
    add.add_argument("--threshold", type=float, required=True)
    add.add_argument("--process-type", default="web")
    add.add_argument("--sensitivity", type=int, default=5, help="minutes over: 1, 5 or 10 (5)")
    add.add_argument("--renotify", type=int, default=60, help="minutes: 5, 60 or 1440 (60)")
    add.add_argument("--webhook", help="URL to POST signed JSON notices to")
    add.add_argument("--slack", help="Slack-compatible incoming-webhook URL")
    add.add_argument("--email", nargs="+", default=[], metavar="ADDR")
    lst = alerts_sub.add_parser("list", help="an app's rules, one JSON object a line")
    lst.add_argument("app")
    rm = alerts_sub.add_parser("remove", help="remove a rule")
    rm.add_argument("app")
    rm.add_argument("id")
    test = alerts_sub.add_parser("test", help="send a test notice on a rule's channels")
    test.add_argument("app")
    test.add_argument("id")
    run = alerts_sub.add_parser(
        "run",
        help="scale-out role: summary topics into alert notices (needs KAFKA_BOOTSTRAP_SERVERS;"
        " `drainpipe up` runs alerts itself)",
    )
    run.add_argument("--data-dir", type=Path, help="where alerts.sqlite is without a shard")
    run.add_argument("--log-level", default="INFO")
    run.add_argument("--host", help="where /metrics and /healthz are served (127.0.0.1)")
    run.add_argument("--port", type=int, help="their port ($PORT, else 5000)")
    run.add_argument("--instance-id", help=INSTANCE_ID_HELP)
    for command in (add, lst, rm, test):
        command.add_argument("--data-dir", type=Path)
        command.add_argument(
            "--postgres",
            action="store_true",
            help="the scale-out deployment's apps and rules (in PostgreSQL)",
        )


def run(
    args: argparse.Namespace,
    registry: AppRegistry,
    config: Config,
    out: TextIO = sys.stdout,
    clock: Clock = SYSTEM,
) -> int:
    if args.alerts_command != "add" and registry.by_name(args.app) is None:
        where = "the scale-out registry" if getattr(args, "postgres", False) else "this registry"
        raise RuleError(
            f"no app named {args.app!r} in {where} (drainpipe apps list"
            + (" --postgres" if getattr(args, "postgres", False) else ", or add --postgres")
            + ")"
        )
    if getattr(args, "postgres", False):
        if not config.shards:
            raise RuleError("--postgres needs DATABASE_URL or DRAINPIPE_SHARDS (the first shard)")
        state = postgres_state(config.shards[0])
    else:
        state = AlertState(config.alerts_path)
    try:
        if args.alerts_command == "add":
            rule = make(
                registry, args.app, args.metric, args.threshold, args.process_type,
                args.sensitivity, args.renotify, args.webhook, args.slack, tuple(args.email),
                targets.nets_of(config),
            )  # fmt: skip
            now = clock.now_ms()
            state.add(rule, now)
            body = shown(rule, now, reveal=True)
            if rule.webhook_secret:
                body["webhook_secret"] = rule.webhook_secret
            print(json.dumps(body), file=out)
            return 0
        if args.alerts_command == "list":
            for stored in state.rules(args.app):
                print(json.dumps(shown(stored.rule, stored.created_ms, reveal=True)), file=out)
            return 0
        if args.alerts_command == "remove":
            if not state.remove(args.app, args.id):
                raise RuleError(f"{args.app} has no rule {args.id!r} (drainpipe alerts list)")
            print(json.dumps({"id": args.id, "removed": True}), file=out)
            return 0
        found = state.rule(args.app, args.id)
        if found is None:
            raise RuleError(f"{args.app} has no rule {args.id!r} (drainpipe alerts list)")
        return _test(found.rule, config, clock, out)
    finally:
        state.close()


def _test(rule: Rule, config: Config, clock: Clock, out: TextIO) -> int:
    smtp = notify.smtp_of(config)
    minute = clock.now_ms() // 60_000 * 60_000
    failed = 0
    for channel in channels(rule):
        if not channel:
            raise RuleError(f"rule {rule.id} has no --webhook, --slack or --email to test")
        delivery = f"{rule.id}:test:{minute}:{channel}:{secrets.token_hex(4)}"
        body = notify.body(rule, "test", minute, None, [], config.base_url, delivery)
        try:
            notify.send(channel, rule, body, smtp, targets.nets_of(config))
            print(json.dumps({"id": rule.id, "channel": channel, "sent": True}), file=out)
        except Exception as exc:
            failed += 1
            print(json.dumps({"id": rule.id, "channel": channel, "error": str(exc)}), file=out)
    return 1 if failed else 0
