"""The simulated clock: merges router requests, runtime metrics and events into one timeline (pure).

Router requests arrive as a Poisson process; each dyno samples its runtime metrics every
20 s (load, then memory 3 ms later, and an R14 while over its quota); each app starts an
event cluster at exponentially distributed intervals. The clock starts at
`Workload.start_us` and advances by the lines' own times, so lines per simulated second
average `Workload.rate`. Dynos and events draw from `random.Random(seed)`, router requests
from numpy's generator on the same seed, each in a fixed order: the same workload gives
the same lines.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple

from drainpipe.tools.simulate import events
from drainpipe.tools.simulate.dynos import METRICS_EVERY_US, AppState, Dyno, new_app
from drainpipe.tools.simulate.lines import PRI_APP, PRI_DYNO, syslog
from drainpipe.tools.simulate.traffic import RouterStream

LINE_KINDS: Final = ("router", "memory", "load", "event")  # as batch.build counts them
R14_BEFORE_RESTART: Final = 6  # samples over quota before someone may restart the dyno
JITTER_US: Final = 200_000  # runtime metrics come 20 s apart, give or take this


class SimulateError(ValueError):
    """A workload or command that cannot run; the message says what to change."""


class SimLine(NamedTuple):
    t_us: int
    app: int  # index into the workload's apps
    kind: str  # one of LINE_KINDS
    text: str  # the syslog message, newline included


class _Line(NamedTuple):
    """A line due at its heap time; its timestamp is added when it is emitted."""

    app: int
    kind: str
    appname: str
    procid: str
    text: str


class _Tick(NamedTuple):
    """A dyno's runtime-metrics sample, due at `nominal_us` give or take JITTER_US."""

    app: int
    dyno: Dyno
    nominal_us: int


_Item = _Line | _Tick | AppState


@dataclass(frozen=True, slots=True)
class Workload:
    start_us: int
    rate: float = 1000.0  # lines per simulated second, every kind together
    apps: int = 1
    dynos: int = 2  # per process type, at the start
    process_types: tuple[str, ...] = ("web", "worker")
    seed: int = 1
    router_only: bool = False
    event_interval_s: float = 600.0  # mean time between event clusters of one app
    app_names: tuple[str, ...] = ()  # default sim-1 ... sim-N

    def names(self) -> tuple[str, ...]:
        return self.app_names or tuple(f"sim-{i + 1}" for i in range(self.apps))

    def background_rate(self) -> float:
        """Lines per second of runtime metrics and events, before any router request."""
        if self.router_only:
            return 0.0
        dynos = self.dynos * len(self.process_types)
        metrics = self.apps * dynos * 2 / (METRICS_EVERY_US / 1e6)
        return metrics + self.apps * events.mean_lines(dynos) / self.event_interval_s

    def check(self) -> None:
        if self.apps < 1 or self.dynos < 1:
            raise SimulateError(f"--apps {self.apps} and --dynos {self.dynos} must be at least 1")
        if len(self.names()) != self.apps:
            raise SimulateError(f"{len(self.names())} app names for {self.apps} apps")
        if "web" not in self.process_types:
            raise SimulateError(
                f"process types {','.join(self.process_types)} have no `web`: "
                "the router only sends requests to web dynos"
            )
        if self.event_interval_s <= 0:
            raise SimulateError(f"event interval {self.event_interval_s} s must be above 0")
        floor = self.background_rate()
        if self.rate <= floor * 1.05:
            raise SimulateError(
                f"--rate {self.rate:g} lines/s leaves no room for router requests: "
                f"{self.apps} apps with {self.dynos} dynos per process type already log "
                f"{floor:.2f} lines/s of runtime metrics and events; raise --rate above "
                f"{floor * 1.05:.2f} or lower --apps/--dynos"
            )


class Generator:
    """An endless, time-ordered stream of SimLines for a workload."""

    def __init__(self, workload: Workload) -> None:
        workload.check()
        self.w = workload
        self.rng = rng = random.Random(workload.seed)
        names = workload.names()
        self.apps = [
            new_app(rng, i, name, workload.process_types, workload.dynos)
            for i, name in enumerate(names)
        ]
        self.router_rate = workload.rate - workload.background_rate()
        self.router = RouterStream(workload.seed, names, self.router_rate, workload.start_us)
        self.max_dynos = max(2, 2 * workload.dynos)
        self._web = [app.web_dynos() for app in self.apps]  # where the router sends requests
        self._heap: list[tuple[int, int, _Item]] = []
        self._seq = 0
        t0 = workload.start_us
        if not workload.router_only:
            for app in self.apps:
                for dynos in app.formation.values():
                    for dyno in dynos:
                        self._tick(app.index, dyno, t0 + rng.randrange(METRICS_EVERY_US))
                self._push(t0 + self._event_gap(), app)

    def _event_gap(self) -> int:
        return int(self.rng.expovariate(1.0 / self.w.event_interval_s) * 1e6) + 1

    def _push(self, t_us: int, item: _Item) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t_us, self._seq, item))

    def lines(self) -> Iterator[SimLine]:
        heap, router, web = self._heap, self.router, self._web
        while True:
            if heap and heap[0][0] <= router.peek_us():
                t, _, item = heapq.heappop(heap)
                yield from self._due(t, item)
                continue
            t, a, line = router.take(web)
            yield SimLine(t, a, "router", line)

    def _due(self, t: int, item: _Item) -> Iterator[SimLine]:
        if isinstance(item, _Line):
            pri = PRI_APP if item.appname == "app" else PRI_DYNO
            yield SimLine(
                t, item.app, item.kind, syslog(pri, t, item.appname, item.procid, item.text)
            )
        elif isinstance(item, _Tick):
            if item.dyno.alive:
                yield from self._sample(t, item)
        else:
            lines, started = events.cluster(self.rng, item, t, self.max_dynos)
            self._web[item.index] = item.web_dynos()
            for when, appname, procid, text in lines:
                self._push(when, _Line(item.index, "event", appname, procid, text))
            for up, dyno in started:
                self._tick(item.index, dyno, up + self.rng.randrange(METRICS_EVERY_US))
            self._push(t + self._event_gap(), item)

    def _tick(self, app: int, dyno: Dyno, nominal_us: int) -> None:
        jitter = self.rng.randrange(-JITTER_US, JITTER_US)
        self._push(nominal_us + jitter, _Tick(app, dyno, nominal_us))

    def _sample(self, t: int, tick: _Tick) -> Iterator[SimLine]:
        dyno, app, name = tick.dyno, tick.app, tick.dyno.name
        load, memory = dyno.sample(self.rng)
        yield SimLine(t, app, "load", syslog(PRI_DYNO, t, "heroku", name, load))
        self._push(t + 3_000, _Line(app, "memory", "heroku", name, memory))
        if dyno.over_quota:
            self._push(t + 5_000, _Line(app, "event", "heroku", name, events.R14))
            if dyno.over_quota >= R14_BEFORE_RESTART and self.rng.random() < 0.25:
                for when, appname, procid, text in events.restart(self.rng, dyno, t + 9_000):
                    self._push(when, _Line(app, "event", appname, procid, text))
        self._tick(app, dyno, tick.nominal_us + METRICS_EVERY_US)
