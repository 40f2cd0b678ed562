"""Command line: `drainpipe up`, the scale-out roles, and `drainpipe apps create|list`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from drainpipe import logs
from drainpipe.apps import AppError, postgres_registry, sqlite_registry
from drainpipe.config import Config, ConfigError

ROLES = ("ingress", "rollup", "sink", "retry", "api")


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
        help="HTTP worker processes (one per core); 0 runs HTTP in the main process",
    )
    up.add_argument(
        "--flush-interval",
        type=float,
        dest="flush_interval_s",
        help="seconds a changed minute waits before it is flushed (1.0)",
    )
    up.add_argument("--log-level", default="INFO")

    for role, text in (
        ("ingress", "drain endpoint: POST /logs into Kafka"),
        ("rollup", "raw topics into per-minute summary topics"),
        ("sink", "summary topics into PostgreSQL shards; failures to RETRY topics"),
        ("retry", "RETRY topics into PostgreSQL, forever, with backoff"),
        ("api", "read API over the PostgreSQL shards"),
    ):
        r = sub.add_parser(role, help=f"scale-out role: {text} (needs KAFKA_BOOTSTRAP_SERVERS)")
        r.add_argument("--host", help="address to listen on (ingress, api)")
        r.add_argument("--port", type=int, help="port to listen on (ingress, api; or $PORT)")
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
    return p


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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
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
            )
            if config.workers:
                _share_metrics(config.data_dir)
            from drainpipe.server import serve

            serve(config)
            return 0
        if args.command in ROLES:
            logs.setup(args.log_level)
            config = Config.from_env(os.environ, host=args.host, port=args.port)
            from drainpipe import roles

            roles.run(args.command, config)
            return 0
        config = Config.from_env(os.environ, data_dir=args.data_dir)
        registry = (
            postgres_registry(config.shards[0])
            if args.postgres
            else sqlite_registry(config.apps_path)
        )
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
        for app in registry.list():
            print(json.dumps({"name": app.name, "id": app.id}))
        return 0
    except (ConfigError, AppError, ValueError) as exc:
        print(f"drainpipe: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
