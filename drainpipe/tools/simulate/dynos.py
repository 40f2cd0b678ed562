"""Simulated apps and dynos: formation, drifting memory and load, runtime-metrics samples (pure).

Each dyno samples every 20 s. Memory wanders around a per-boot base; some boots leak a
few MB per sample until they pass the quota, when RSS is capped at the quota, the rest
swaps and each sample brings an R14 event; a restart (a new boot) clears it. Load is a
noisy walk towards the dyno's busyness, with 5 and 15 minute averages smoothed from it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Final

from drainpipe.tools.simulate.lines import load_text, memory_text, uuid4

METRICS_EVERY_US: Final = 20_000_000
QUOTA_MB: Final = {"web": 512.0, "worker": 1024.0}  # Standard-1X and Standard-2X
DEFAULT_QUOTA_MB: Final = 512.0
SIZES: Final = {512.0: "Standard-1X", 1024.0: "Standard-2X"}
COMMANDS: Final = {
    "web": "bundle exec puma -C config/puma.rb",
    "worker": "bundle exec sidekiq -C config/sidekiq.yml",
    "clock": "bundle exec clockwork config/clock.rb",
}
LEAKY_SHARE: Final = 0.2  # boots that leak memory: 3-8 MB per sample, R14 in ~15-25 min
_DECAY_5M: Final = 1 - math.exp(-20 / 300)
_DECAY_15M: Final = 1 - math.exp(-20 / 900)


def command(process_type: str) -> str:
    return COMMANDS.get(process_type, f"bin/{process_type}")


@dataclass(slots=True)
class Dyno:
    """One dyno (`web.1`) across its boots; `boot` changes at every restart."""

    app_number: int
    process_type: str
    index: int
    quota_mb: float
    busy: float  # the load average this dyno's work tends to
    boot: str = ""
    base_mb: float = 0.0
    leak_mb: float = 0.0  # per 20 s sample
    leaked_mb: float = 0.0
    wander_mb: float = 0.0
    cache_mb: float = 0.0
    pgpgin: int = 0
    pgpgout: int = 0
    load: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    over_quota: int = 0  # samples in a row above the quota
    alive: bool = True

    @property
    def name(self) -> str:
        return f"{self.process_type}.{self.index}"

    @property
    def dyno_id(self) -> str:
        return f"heroku.{self.app_number}.{self.boot}"

    def reboot(self, rng: random.Random) -> None:
        """A new boot: new id, memory back to its base, maybe a leak this time."""
        self.boot = uuid4(rng.getrandbits(128))
        self.base_mb = self.quota_mb * rng.uniform(0.25, 0.6)
        self.leak_mb = rng.uniform(3.0, 8.0) if rng.random() < LEAKY_SHARE else 0.0
        self.leaked_mb = self.wander_mb = 0.0
        self.cache_mb = rng.uniform(0.0, 20.0)
        self.pgpgin = self.pgpgout = rng.randrange(10_000, 100_000)
        self.over_quota = 0
        self.load = [self.busy * 0.5] * 3

    def sample(self, rng: random.Random) -> tuple[str, str]:
        """(load text, memory text) of the next 20 s sample; updates over_quota."""
        self.leaked_mb += self.leak_mb
        self.wander_mb = 0.9 * self.wander_mb + rng.gauss(0.0, 3.0)
        self.cache_mb = min(max(self.cache_mb + rng.gauss(0.0, 0.5), 0.0), 64.0)
        total = max(self.base_mb + self.leaked_mb + self.wander_mb, 16.0)
        rss = min(total, self.quota_mb)
        swap = total - rss
        self.pgpgin += int(rng.expovariate(1 / 3000))
        self.pgpgout = min(self.pgpgin, self.pgpgout + int(rng.expovariate(1 / 3000)))
        self.over_quota = self.over_quota + 1 if swap > 0 else 0
        one, five, fifteen = self.load
        one = max(0.6 * one + 0.4 * self.busy + rng.gauss(0.0, 0.1 + 0.15 * self.busy), 0.0)
        five += (one - five) * _DECAY_5M
        fifteen += (one - fifteen) * _DECAY_15M
        self.load = [one, five, fifteen]
        source, dyno_id = self.name, self.dyno_id
        rss_r, swap_r = round(rss, 2), round(swap, 2)
        return (
            load_text(source, dyno_id, one, five, fifteen),
            memory_text(
                source,
                dyno_id,
                rss_r + swap_r,
                rss_r,
                self.cache_mb,
                swap_r,
                self.pgpgin,
                self.pgpgout,
                self.quota_mb,
            ),
        )


@dataclass(slots=True)
class AppState:
    """One simulated app: its name, number, release and formation of live dynos."""

    index: int
    name: str
    number: int  # the app number in `dyno=heroku.<number>.<boot>`
    release: int
    formation: dict[str, list[Dyno]]
    users: tuple[str, ...]

    def web_dynos(self) -> list[str]:
        return [d.name for d in self.formation.get("web", [])]

    def formation_text(self) -> str:
        """`web@2:Standard-1X worker@1:Standard-2X`, as the `Scaled to` event writes it."""
        parts = []
        for pt, dynos in self.formation.items():
            quota = QUOTA_MB.get(pt, DEFAULT_QUOTA_MB)
            parts.append(f"{pt}@{len(dynos)}:{SIZES.get(quota, 'Standard-1X')}")
        return " ".join(parts)

    def add_dyno(self, rng: random.Random, process_type: str, busy: float) -> Dyno:
        dynos = self.formation.setdefault(process_type, [])
        index = max((d.index for d in dynos), default=0) + 1
        quota = QUOTA_MB.get(process_type, DEFAULT_QUOTA_MB)
        dyno = Dyno(self.number, process_type, index, quota, busy)
        dyno.reboot(rng)
        dynos.append(dyno)
        return dyno


def new_app(
    rng: random.Random, index: int, name: str, process_types: tuple[str, ...], dynos: int
) -> AppState:
    users = tuple(f"{who}@{name}.example.com" for who in ("ana", "bo", "chen", "deploy-bot"))
    app = AppState(
        index, name, rng.randrange(1_000_000, 99_999_999), rng.randrange(3, 200), {}, users
    )
    for pt in process_types:
        for _ in range(dynos):
            app.add_dyno(rng, pt, busy_for(rng, pt))
    return app


def busy_for(rng: random.Random, process_type: str) -> float:
    """The load a dyno of this process type tends to (web dynos are busier)."""
    return rng.uniform(0.5, 2.5) if process_type == "web" else rng.uniform(0.1, 1.2)
