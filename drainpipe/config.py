"""Settings of a drainpipe process, as one frozen object built from flags and environment."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    pass


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is outside {lo}..{hi}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is outside {lo}..{hi}")
    return value


def _nets(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    found = []
    for item in (env.get(name) or "").replace(" ", ",").split(","):
        if item:
            try:
                found.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ConfigError(
                    f"{name} entry {item!r} is not a network: give addresses or CIDR "
                    "networks, comma-separated (10.0.0.0/8,127.0.0.1)"
                ) from None
    return tuple(found)


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw) if raw else None


def _kafka(env: Mapping[str, str]) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """Bootstrap servers and TLS settings, from KAFKA_BOOTSTRAP_SERVERS or Heroku's KAFKA_URL.

    Heroku's Kafka add-on gives `kafka+ssl://host:port,kafka+ssl://...` and PEM strings in
    KAFKA_TRUSTED_CERT, KAFKA_CLIENT_CERT and KAFKA_CLIENT_CERT_KEY.
    """
    extra = _pairs(env.get("DRAINPIPE_KAFKA_CONFIG", ""))
    plain = env.get("KAFKA_BOOTSTRAP_SERVERS")
    if plain:
        return plain, extra
    url = env.get("KAFKA_URL")
    if not url:
        return None, ()
    hosts, tls = [], False
    for part in url.split(","):
        scheme, sep, rest = part.strip().partition("://")
        if not sep:
            scheme, rest = "kafka", scheme
        if scheme not in ("kafka", "kafka+ssl"):
            raise ConfigError(f"KAFKA_URL entry {part!r}: scheme must be kafka:// or kafka+ssl://")
        tls = tls or scheme == "kafka+ssl"
        hosts.append(rest)
    tls_settings: list[tuple[str, str]] = []
    if tls:
        tls_settings.append(("security.protocol", "SSL"))
        for var, key in (
            ("KAFKA_TRUSTED_CERT", "ssl.ca.pem"),
            ("KAFKA_CLIENT_CERT", "ssl.certificate.pem"),
            ("KAFKA_CLIENT_CERT_KEY", "ssl.key.pem"),
        ):
            if env.get(var):
                tls_settings.append((key, env[var]))
        # Heroku's broker certificates name no host we connect by.
        tls_settings.append(("ssl.endpoint.identification.algorithm", "none"))
    return ",".join(hosts), (*tls_settings, *extra)


def _pairs(raw: str) -> tuple[tuple[str, str], ...]:
    """librdkafka settings from `key=value,key=value` (DRAINPIPE_KAFKA_CONFIG)."""
    out = []
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"DRAINPIPE_KAFKA_CONFIG entry {item!r} is not key=value")
        out.append((key.strip(), value.strip()))
    return tuple(out)


INSTANCE_ID_HELP = (
    "static membership: this process's own name in its consumer group, kept across"
    " restarts, so a quick restart gets its partitions back without a rebalance; Apache"
    " Kafka 2.3 or later, see docs/deploy.md ($DRAINPIPE_INSTANCE_ID; none by default)"
)
# What Kafka takes as a group.instance.id, as it does for topic names.
_INSTANCE_ID = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def _instance_id(
    env: Mapping[str, str], kafka_config: tuple[tuple[str, str], ...], flag: object
) -> str | None:
    """The consumer-group instance id: --instance-id, else DRAINPIPE_INSTANCE_ID.

    Opt-in: it must differ per process and stay with it across restarts, which only the
    operator can promise, and Tansu 0.6 stalls assignment for static members."""
    if any(k == "group.instance.id" for k, _ in kafka_config):
        raise ConfigError(
            "DRAINPIPE_KAFKA_CONFIG sets group.instance.id, which every process would share;"
            " give each process its own with --instance-id (or DRAINPIPE_INSTANCE_ID)"
        )
    if flag is not None:
        raw, source = str(flag), "--instance-id"
        if not raw.strip():
            raise ConfigError("--instance-id is empty: give this process's name, or leave it out")
    else:
        raw, source = env.get("DRAINPIPE_INSTANCE_ID", ""), "DRAINPIPE_INSTANCE_ID"
    if not raw.strip():
        return None
    if not _INSTANCE_ID.match(raw.strip()) or raw.strip() in (".", ".."):
        raise ConfigError(
            f"{source} {raw!r} is not a usable instance id: up to 249 letters, digits,"
            " '.', '_' or '-' (for example rollup.1)"
        )
    return raw.strip()


def default_workers() -> int:
    """HTTP workers of `up`: a core each, after one for the primary (at least one, at
    most 8). On 2 cores that is one worker: a second gains little ingest for its
    memory (BENCHMARKS.md, "Figures behind the design")."""
    return max(1, min((os.cpu_count() or 1) - 1, 8))


# The scale-out roles, each a `drainpipe <role>` process (see docs/deploy.md).
ROLES = ("ingress", "rollup", "sink", "retry", "api", "alerts")


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 5000
    partitions: int | None = None  # None: what the data directory has, else 8
    workers: int = 1  # HTTP worker processes of `up`; 0 serves HTTP in the primary
    flush_interval_s: float = 1.0
    lateness_s: int = 300
    max_future_s: int = 300  # lines further ahead of the wall clock are clock skew
    retention_days: int = 8
    # Lines older than this are dropped as too old (0: the retention, whose days they
    # would land in are dropped anyway).
    max_age_s: int = 0
    raw_retention_hours: int = 24  # embedded raw log kept at least this long
    max_body_bytes: int = 8 * 1024 * 1024
    # Series per app in use at once (see `limits`).
    max_process_types: int = 500
    max_custom_names: int = 2000
    # HTTP limits of each serving process (see `guard`).
    header_timeout_s: float = 10.0  # from the connection (or the request's first byte)
    # From the end of the headers to the end of the body, and from there to the end of
    # the answer (a client that stops reading it).
    body_timeout_s: float = 60.0
    max_header_bytes: int = 64 * 1024  # request line and headers
    max_headers: int = 100
    max_connections: int = 4096  # per HTTP process; lowered to fit the descriptor limit
    # TLS for the drain endpoint and API: PEM certificate (chain) and key files.
    certfile: Path | None = None
    keyfile: Path | None = None
    # Scale-out (process roles): Kafka and PostgreSQL shards.
    kafka_bootstrap: str | None = None
    kafka_config: tuple[tuple[str, str], ...] = ()  # extra librdkafka settings
    kafka_partitions: int = 32
    kafka_replication: int = 3
    # Static group membership: a member restarted under the same id gets its partitions
    # back without a rebalance (see docs/deploy.md). None: members are dynamic.
    instance_id: str | None = None
    topic_prefix: str = ""
    shards: tuple[str, ...] = ()  # PostgreSQL DSNs; the first also holds the app registry
    # Alerts: a minute is judged this long after it ends (None: the lateness, when late
    # data has landed); links in notices start with public_url (None: this host and port).
    alert_delay_s: int | None = None
    public_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "drainpipe@localhost"
    # Private networks webhooks may go to (CIDR); by default only public addresses.
    alert_allow_nets: tuple[str, ...] = ()
    access_log: bool = False  # one JSON line per API, dashboard and health request

    @classmethod
    def from_env(cls, env: Mapping[str, str], **flags: object) -> Config:
        """Flags win over DRAINPIPE_* environment variables, which win over defaults."""
        values: dict[str, object] = {
            "data_dir": Path(env.get("DRAINPIPE_DATA_DIR") or "./data"),
            "host": env.get("DRAINPIPE_HOST") or "127.0.0.1",
            "port": _int(env, "PORT", 5000, 1, 65535),
            # One core is the primary's (rollup, sink, the fsynced log); the rest serve HTTP.
            "workers": _int(env, "DRAINPIPE_WORKERS", default_workers(), 0, 64),
            "partitions": _int(env, "DRAINPIPE_PARTITIONS", 0, 0, 4096) or None,
            "flush_interval_s": _float(env, "DRAINPIPE_FLUSH_INTERVAL_S", 1.0, 0.01, 60.0),
            "lateness_s": _int(env, "DRAINPIPE_LATENESS_S", 300, 0, 86_400),
            "max_future_s": _int(env, "DRAINPIPE_MAX_FUTURE_S", 300, 0, 86_400),
            "retention_days": _int(env, "DRAINPIPE_RETENTION_DAYS", 8, 1, 3650),
            "max_age_s": _int(env, "DRAINPIPE_MAX_AGE_S", 0, 0, 3650 * 86_400),
            "raw_retention_hours": _int(env, "DRAINPIPE_RAW_RETENTION_HOURS", 24, 1, 24 * 3650),
            "max_process_types": _int(env, "DRAINPIPE_MAX_PROCESS_TYPES", 500, 1, 1 << 20),
            "max_custom_names": _int(env, "DRAINPIPE_MAX_CUSTOM_NAMES", 2000, 0, 1 << 20),
            "header_timeout_s": _float(env, "DRAINPIPE_HEADER_TIMEOUT_S", 10.0, 0.1, 3600.0),
            "body_timeout_s": _float(env, "DRAINPIPE_BODY_TIMEOUT_S", 60.0, 0.1, 3600.0),
            "max_header_bytes": _int(env, "DRAINPIPE_MAX_HEADER_BYTES", 65536, 1024, 1 << 24),
            "max_headers": _int(env, "DRAINPIPE_MAX_HEADERS", 100, 8, 10_000),
            "max_connections": _int(env, "DRAINPIPE_MAX_CONNECTIONS", 4096, 1, 1 << 20),
            "certfile": _path(env, "DRAINPIPE_TLS_CERTFILE"),
            "keyfile": _path(env, "DRAINPIPE_TLS_KEYFILE"),
        }
        bootstrap, kafka_config = _kafka(env)
        shards = tuple((env.get("DRAINPIPE_SHARDS") or "").replace(",", " ").split())
        if not shards and env.get("DATABASE_URL"):
            shards = (env["DATABASE_URL"],)
        values.update(
            kafka_bootstrap=bootstrap,
            kafka_config=kafka_config,
            kafka_partitions=_int(env, "DRAINPIPE_KAFKA_PARTITIONS", 32, 1, 4096),
            kafka_replication=_int(env, "DRAINPIPE_KAFKA_REPLICATION", 3, 1, 16),
            instance_id=_instance_id(env, kafka_config, flags.pop("instance_id", None)),
            topic_prefix=env.get("DRAINPIPE_TOPIC_PREFIX") or env.get("KAFKA_PREFIX") or "",
            shards=shards,
            alert_delay_s=_int(env, "DRAINPIPE_ALERT_DELAY_S", -1, -1, 86_400),
            public_url=env.get("DRAINPIPE_PUBLIC_URL") or None,
            smtp_host=env.get("DRAINPIPE_SMTP_HOST") or None,
            smtp_port=_int(env, "DRAINPIPE_SMTP_PORT", 587, 1, 65535),
            smtp_starttls=(env.get("DRAINPIPE_SMTP_STARTTLS") or "1") not in ("0", "false", "no"),
            smtp_user=env.get("DRAINPIPE_SMTP_USER") or None,
            smtp_password=env.get("DRAINPIPE_SMTP_PASSWORD") or None,
            smtp_from=env.get("DRAINPIPE_SMTP_FROM") or "drainpipe@localhost",
            alert_allow_nets=_nets(env, "DRAINPIPE_ALERT_ALLOW_NETS"),
            access_log=(env.get("DRAINPIPE_ACCESS_LOG") or "0") not in ("0", "false", "no"),
        )
        if values["alert_delay_s"] == -1:
            values["alert_delay_s"] = None
        values.update({k: v for k, v in flags.items() if v is not None})
        config = cls(**values)  # type: ignore[arg-type]
        config.check_tls()
        return config

    def check_tls(self) -> None:
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError(
                "TLS needs both a certificate and its key: give --certfile and --keyfile "
                "(or DRAINPIPE_TLS_CERTFILE and DRAINPIPE_TLS_KEYFILE), or neither"
            )
        for what, path in (("certificate", self.certfile), ("key", self.keyfile)):
            if path is not None and not path.is_file():
                raise ConfigError(f"TLS {what} file {str(path)!r} does not exist")

    def require_scale(self, role: str) -> None:
        missing = []
        if not self.kafka_bootstrap and role != "api":  # the api reads PostgreSQL only
            missing.append("KAFKA_BOOTSTRAP_SERVERS (or KAFKA_URL)")
        if not self.shards and role in ("sink", "retry", "api", "ingress"):
            missing.append("DATABASE_URL or DRAINPIPE_SHARDS")
        if missing:
            needs = "PostgreSQL" if role == "api" else "Kafka and PostgreSQL"
            raise ConfigError(
                f"`drainpipe {role}` runs against {needs}; set {' and '.join(missing)}"
                " (or use `drainpipe up` for the all-in-one embedded default)"
            )

    @property
    def max_age_ms(self) -> int:
        """How far behind the wall clock a line may be dated and still be stored."""
        return (self.max_age_s or self.retention_days * 86_400) * 1000

    @property
    def bus_dir(self) -> Path:
        return self.data_dir / "bus"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "metrics.sqlite"

    @property
    def apps_path(self) -> Path:
        return self.data_dir / "apps.sqlite"

    @property
    def alerts_path(self) -> Path:
        return self.data_dir / "alerts.sqlite"

    @property
    def judge_delay_s(self) -> int:
        return self.lateness_s if self.alert_delay_s is None else self.alert_delay_s

    @property
    def base_url(self) -> str:
        """Where a person's browser finds this drainpipe (links in alert notices)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.certfile else "http"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{self.port}"
