"""Per-app series limits: how many process types and custom metric series an app may have.

Every process type and every custom metric (a name on a process type) is a series:
windows in the rollup, rows in the store, lines in an API answer. An app that logs a new
name per request (a request id in a metric name, a dyno name per container) would grow
all three without bound and slow down every other app. So each app may have at most
`max_process_types` process types and `max_custom_names` custom metric series (name and
process type) in use; a name counts as in use
until it has not been seen for `idle_ms` (an hour), so names that stop coming free their
place. Measurements of a name over the limit are dropped before they reach the log, and
counted. The defaults are far above what a real app has (Heroku apps run a handful of
process types; l2met dashboards a few dozen metrics).

Pure and per process: each HTTP process judges the requests it serves, so with N worker
processes an app has at most N times the limit (one worker, the default on 2 cores, is
exact). Decisions are made at ingress, before the durable append, so the rollup's replay
after a crash sees only what was admitted and stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROCESS_TYPE, CUSTOM_NAME = "process_type", "custom_name"
IDLE_MS = 3_600_000
SWEEP_EVERY_MS = 60_000


@dataclass(slots=True)
class _InUse:
    seen: dict[str, int] = field(default_factory=dict)  # name -> last seen, ms
    swept_ms: int = 0


class SeriesLimits:
    def __init__(
        self, max_process_types: int = 500, max_custom_names: int = 2000, idle_ms: int = IDLE_MS
    ) -> None:
        self.limit = {PROCESS_TYPE: max_process_types, CUSTOM_NAME: max_custom_names}
        self.idle_ms = idle_ms
        self._apps: dict[tuple[str, str], _InUse] = {}

    def admit(self, owner: str, kind: str, name: str, now_ms: int) -> bool:
        """Whether `name` may be used by the app now; a new one takes a place if free."""
        use = self._apps.get((owner, kind))
        if use is None:
            use = self._apps[owner, kind] = _InUse()
        seen = use.seen
        if name in seen:
            seen[name] = max(seen[name], now_ms)
            return True
        limit = self.limit[kind]
        if len(seen) >= limit and now_ms - use.swept_ms >= SWEEP_EVERY_MS:
            use.swept_ms = now_ms  # at most once a minute, so a full app costs O(1) a name
            cutoff = now_ms - self.idle_ms
            for old in [n for n, t in seen.items() if t < cutoff]:
                del seen[old]
        if len(seen) >= limit:
            return False
        seen[name] = now_ms
        return True

    def in_use(self, owner: str, kind: str) -> int:
        use = self._apps.get((owner, kind))
        return 0 if use is None else len(use.seen)
