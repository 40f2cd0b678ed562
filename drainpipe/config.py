"""Settings of a drainpipe process, as one frozen object built from flags and environment."""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 5000
    partitions: int | None = None  # None: what the data directory has, else 8
    flush_interval_s: float = 1.0
    lateness_s: int = 300
    max_future_s: int = 300  # lines further ahead of the wall clock are clock skew
    retention_days: int = 8
    max_body_bytes: int = 8 * 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str], **flags: object) -> Config:
        """Flags win over DRAINPIPE_* environment variables, which win over defaults."""
        values: dict[str, object] = {
            "data_dir": Path(env.get("DRAINPIPE_DATA_DIR") or "./data"),
            "host": env.get("DRAINPIPE_HOST") or "127.0.0.1",
            "port": _int(env, "PORT", 5000, 1, 65535),
            "partitions": _int(env, "DRAINPIPE_PARTITIONS", 0, 0, 4096) or None,
            "flush_interval_s": _float(env, "DRAINPIPE_FLUSH_INTERVAL_S", 1.0, 0.01, 60.0),
            "lateness_s": _int(env, "DRAINPIPE_LATENESS_S", 300, 0, 86_400),
            "max_future_s": _int(env, "DRAINPIPE_MAX_FUTURE_S", 300, 0, 86_400),
            "retention_days": _int(env, "DRAINPIPE_RETENTION_DAYS", 8, 1, 3650),
        }
        values.update({k: v for k, v in flags.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def bus_dir(self) -> Path:
        return self.data_dir / "bus"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "metrics.sqlite"

    @property
    def apps_path(self) -> Path:
        return self.data_dir / "apps.sqlite"
