"""Command line: `drainpipe up`, the scale-out roles, `apps create|list`, `simulate`, `replay`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from drainpipe.alert.rules import RuleError
from drainpipe.bus import BusUnavailable
from drainpipe.clock import SYSTEM
from drainpipe.config import INSTANCE_ID_HELP, ROLES, Config, ConfigError
from drainpipe.store.apps import AppError, AppRegistry, postgres_registry, sqlite_registry
from drainpipe.telemetry import logs
from drainpipe.tools import alerts


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="drainpipe", description="Heroku-grade metrics from Logplex HTTPS log drains."
    )
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run every stage in one process on the embedded store")
    up.add_argument("--data-dir", type=Path, help="where the bus and store live (./data)")
    up.add_argument("--host", help="address to listen on (127.0.0.1)")
    up.add_argument("--port", type=int, help="port to listen on (5000, or $PORT)")
    up.add_argument("--partitions", type=int, help="bus partitions, fixed at creation (8)")
    up.add_argument(
        "--workers",
        type=int,
        help="HTTP worker processes (one per core but one, at least 1); 0 runs HTTP in the "
        "main process",
    )
    up.add_argument(
        "--flush-interval",
        type=float,
        dest="flush_interval_s",
        help="seconds a changed minute waits before it is flushed (1.0)",
    )
    _tls_flags(up)
    up.add_argument("--log-level", default="INFO")

    for role, text in (
        ("ingress", "drain endpoint: POST /logs into Kafka"),
        ("rollup", "raw topics into per-minute summary topics"),
        ("sink", "summary topics into PostgreSQL shards; failures to RETRY topics"),
        ("retry", "RETRY topics into PostgreSQL, forever, with backoff"),
        ("api", "read API over the PostgreSQL shards"),
    ):
        needs = "DATABASE_URL or DRAINPIPE_SHARDS" if role == "api" else "KAFKA_BOOTSTRAP_SERVERS"
        r = sub.add_parser(role, help=f"scale-out role: {text} (needs {needs})")
        serves = "its routes" if role in ("ingress", "api") else "/metrics and /healthz"
        r.add_argument("--host", help=f"address to serve {serves} on (127.0.0.1)")
        r.add_argument("--port", type=int, help=f"port of {serves} ($PORT, else 5000)")
        if role in ("ingress", "api"):
            _tls_flags(r)
        else:
            _instance_flag(r)
        r.add_argument("--log-level", default="INFO")

    apps = sub.add_parser("apps", help="manage apps and their credentials")
    apps_sub = apps.add_subparsers(dest="apps_command", required=True)
    create = apps_sub.add_parser("create", help="create an app; prints its credentials once")
    create.add_argument("name")
    create.add_argument("--data-dir", type=Path)
    create.add_argument(
        "--postgres",
        action="store_true",
        help="use the scale-out registry in DATABASE_URL / DRAINPIPE_SHARDS",
    )
    create.add_argument(
        "--url",
        default=None,
        help="public base URL of drainpipe for the drain_url (http://127.0.0.1:5000)",
    )
    lst = apps_sub.add_parser("list", help="list apps")
    lst.add_argument("--data-dir", type=Path)
    lst.add_argument("--postgres", action="store_true")
    rot = apps_sub.add_parser(
        "rotate", help="replace an app's drain secret or API token; prints the new one once"
    )
    rot.add_argument("name")
    which = rot.add_mutually_exclusive_group(required=True)
    which.add_argument("--drain-secret", action="store_const", const="drain", dest="kind")
    which.add_argument("--api-token", action="store_const", const="token", dest="kind")
    rot.add_argument(
        "--grace",
        type=int,
        default=0,
        help="seconds the old one stays valid, to repoint the drain or clients (0: none)",
    )
    rot.add_argument("--url", default=None, help="public base URL for the new drain_url")
    rot.add_argument("--data-dir", type=Path)
    rot.add_argument("--postgres", action="store_true")
    dele = apps_sub.add_parser(
        "delete", help="delete an app and its credentials now, and its data within a minute"
    )
    dele.add_argument("name")
    dele.add_argument("--yes", action="store_true", help="really delete it and all its data")
    dele.add_argument("--data-dir", type=Path)
    dele.add_argument("--postgres", action="store_true")

    tokens = sub.add_parser("tokens", help="team read tokens: one token reads several apps")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    tcreate = tokens_sub.add_parser("create", help="create a read token; prints it once")
    scope = tcreate.add_mutually_exclusive_group(required=True)
    scope.add_argument("--apps", help="comma-separated app names it reads (shop,blog)")
    scope.add_argument("--all", action="store_true", help="it reads every app, also later ones")
    trevoke = tokens_sub.add_parser("revoke", help="revoke a read token by its id")
    trevoke.add_argument("id")
    tlist = tokens_sub.add_parser("list", help="list read tokens (ids and apps, not tokens)")
    for command in (tcreate, trevoke, tlist):
        command.add_argument("--data-dir", type=Path)
        command.add_argument("--postgres", action="store_true")

    alerts.add_parser(sub)

    sim = sub.add_parser(
        "simulate", help="realistic drain traffic: POST it to a drain URL or write it to files"
    )
    where = sim.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--url", help="drain URL to POST to: http[s]://[user:secret@]host[:port]/logs"
    )
    where.add_argument(
        "--out", type=Path, help="directory for <app>.drain files (<app>.log with --router-only)"
    )
    sim.add_argument("--secret", help="the drain secret of the one app to POST as")
    sim.add_argument(
        "--create-apps",
        action="store_true",
        help="create the --apps apps in the registry of --data-dir; prints their credentials",
    )
    sim.add_argument("--data-dir", type=Path, help="registry for --create-apps (./data)")
    sim.add_argument(
        "--postgres",
        action="store_true",
        help="--create-apps in the scale-out registry (DATABASE_URL or DRAINPIPE_SHARDS)",
    )
    sim.add_argument("--app-prefix", default="sim", help="apps are named <prefix>-1... (sim)")
    sim.add_argument("--rate", type=float, default=1000.0, help="lines per second (1000)")
    sim.add_argument(
        "--duration", type=float, default=60.0, dest="duration_s", help="seconds of traffic (60)"
    )
    sim.add_argument("--lines", type=int, help="lines in all (default: rate x duration)")
    sim.add_argument("--apps", type=int, default=1, help="apps (1)")
    sim.add_argument("--dynos", type=int, default=2, help="dynos per process type (2)")
    sim.add_argument("--process-types", default="web,worker", help="(web,worker)")
    sim.add_argument("--connections", type=int, default=4, help="concurrent POSTs (4)")
    sim.add_argument("--body-lines", type=int, default=500, help="lines per drain body (500)")
    sim.add_argument("--seed", type=int, default=1, help="the same seed, the same traffic (1)")
    sim.add_argument(
        "--start", help="ISO 8601 time of the first line (now; with --out: so the files end now)"
    )
    sim.add_argument("--router-only", action="store_true", help="router lines only")
    sim.add_argument(
        "--event-interval",
        type=float,
        default=600.0,
        dest="event_interval_s",
        help="mean seconds between platform events of an app (600)",
    )

    rp = sub.add_parser(
        "replay", help="backfill files of drain bodies, syslog lines or `heroku logs` output"
    )
    rp.add_argument("files", nargs="+", type=Path)
    rp.add_argument("--app", required=True, help="the app the lines belong to")
    rp.add_argument("--data-dir", type=Path, help="where the bus and store live (./data)")
    rp.add_argument("--batch-lines", type=int, default=500, help="lines per bus batch (500)")
    return p


def _tls_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--certfile", type=Path, help="serve HTTPS: PEM certificate (chain) file")
    p.add_argument("--keyfile", type=Path, help="the certificate's PEM private key file")


def _instance_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--instance-id", help=INSTANCE_ID_HELP)


def _drain_url(base: str, secret: str) -> str:
    parts = urlsplit(base)
    netloc = f"drain:{secret}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme or "http", netloc, parts.path.rstrip("/") + "/logs", "", ""))


def _share_metrics(data_dir: Path) -> None:
    """Counters of every process of `up` in files, before prometheus_client is imported."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before its multiprocess directory was set"
        )
    base = data_dir / "run"
    base.mkdir(parents=True, exist_ok=True)
    for old in base.glob("metrics-*"):
        pid = int(old.name.removeprefix("metrics-") or 0)
        if not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    mine = base / f"metrics-{os.getpid()}"
    mine.mkdir(exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(mine)


def _first_shard(config: Config) -> str:
    if not config.shards:
        raise ConfigError("--postgres needs DATABASE_URL or DRAINPIPE_SHARDS (the registry's)")
    return config.shards[0]


def _tokens(registry: AppRegistry, args: argparse.Namespace) -> int:
    if args.tokens_command == "create":
        names = None if args.all else [n.strip() for n in args.apps.split(",") if n.strip()]
        token_id, token = registry.create_token(names)
        print(json.dumps({"id": token_id, "token": token, "apps": names or "all"}))
    elif args.tokens_command == "revoke":
        registry.revoke_token(args.id)
        print(json.dumps({"id": args.id, "revoked": True}))
    else:
        for t in registry.tokens():
            print(json.dumps({"id": t.id, "apps": "all" if t.apps is None else t.apps}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        SYSTEM.now_ms()  # a bad DRAINPIPE_CLOCK_FILE fails here, not later inside a stage
        if args.command == "up":
            logs.setup(args.log_level)
            config = Config.from_env(
                os.environ,
                data_dir=args.data_dir,
                host=args.host,
                port=args.port,
                partitions=args.partitions,
                flush_interval_s=args.flush_interval_s,
                workers=args.workers,
                certfile=args.certfile,
                keyfile=args.keyfile,
            )
            if config.workers:
                _share_metrics(config.data_dir)
            from drainpipe.service import up

            up.run(config)
            return 0
        # `drainpipe alerts run` is the alerts role; `drainpipe alerts add ...` manages rules.
        running_alerts = args.command == "alerts" and args.alerts_command == "run"
        role = "alerts" if running_alerts else args.command
        if role in ROLES and (role != "alerts" or running_alerts):
            logs.setup(args.log_level)
            tls = {k: getattr(args, k, None) for k in ("certfile", "keyfile")}
            dirs = {"data_dir": getattr(args, "data_dir", None)}
            where = {k: getattr(args, k, None) for k in ("host", "port", "instance_id")}
            from drainpipe.service import roles

            try:
                config = Config.from_env(os.environ, **where, **tls, **dirs)
                roles.run(role, config)
            except (ConfigError, BusUnavailable) as exc:
                # One structured line, as the role's other logs are, for its supervisor.
                logging.getLogger("drainpipe.service.roles").error(
                    "role.start_failed", extra={"role": role, "error": str(exc)}
                )
                return 2
            return 0
        config = Config.from_env(os.environ, data_dir=args.data_dir)
        if args.command == "simulate":
            from drainpipe.tools.simulate import command

            options = command.Options(
                url=args.url,
                out=args.out,
                secret=args.secret,
                rate=args.rate,
                duration_s=args.duration_s,
                lines=args.lines,
                apps=args.apps,
                dynos=args.dynos,
                process_types=tuple(t for t in args.process_types.split(",") if t),
                connections=args.connections,
                seed=args.seed,
                start=args.start,
                body_lines=args.body_lines,
                router_only=args.router_only,
                create_apps=args.create_apps,
                apps_path=config.apps_path,
                registry_dsn=_first_shard(config) if args.postgres else None,
                app_prefix=args.app_prefix,
                event_interval_s=args.event_interval_s,
            )
            return command.run(options, sys.stdout, sys.stderr)
        if args.command == "replay":
            from drainpipe.tools import replay

            return replay.run(args.files, args.app, config, sys.stderr, args.batch_lines)
        registry = (
            postgres_registry(_first_shard(config))
            if args.postgres
            else sqlite_registry(config.apps_path)
        )
        if args.command == "tokens":
            return _tokens(registry, args)
        if args.command == "alerts":
            return alerts.run(args, registry, config)
        if args.apps_command == "create":
            base = args.url or f"http://{config.host}:{config.port}"
            new = registry.create(args.name)
            print(
                json.dumps(
                    {
                        "name": new.app.name,
                        "id": new.app.id,
                        "drain_secret": new.drain_secret,
                        "drain_url": _drain_url(base, new.drain_secret),
                        "api_token": new.api_token,
                    }
                )
            )
            return 0
        if args.apps_command == "rotate":
            new_secret = registry.rotate(args.name, args.kind, args.grace)
            out: dict[str, object] = {"name": args.name}
            if args.kind == "drain":
                base = args.url or f"http://{config.host}:{config.port}"
                out.update(drain_secret=new_secret, drain_url=_drain_url(base, new_secret))
            else:
                out["api_token"] = new_secret
            out["old_valid_for_s"] = args.grace
            print(json.dumps(out))
            return 0
        if args.apps_command == "delete":
            if not args.yes:
                print(
                    f"drainpipe: error: deleting {args.name!r} removes its credentials and all "
                    "its metrics and events for good; pass --yes to do it",
                    file=sys.stderr,
                )
                return 2
            gone = registry.delete(args.name)
            print(json.dumps({"name": gone.name, "id": gone.id, "deleted": True}))
            return 0
        for app in registry.list():
            print(json.dumps({"name": app.name, "id": app.id}))
        return 0
    except (ConfigError, AppError, RuleError, ValueError, OSError, RuntimeError) as exc:
        print(f"drainpipe: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
