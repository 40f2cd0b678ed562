"""Platform events of a simulated app: deploys, releases, config, scaling, restarts, crashes (pure).

A cluster is what one operation logs, spread over the seconds it takes: a deploy is a
build, a deploy and a release line from `app api`, then every dyno restarting
(`heroku web.1: Restarting`, state changes, SIGTERM, exit, start). Each cluster also
changes the app: dynos get new boot ids, releases count up, scaling adds or stops dynos.
"""

from __future__ import annotations

import random
from itertools import accumulate
from typing import Final

from drainpipe.tools.simulate.dynos import AppState, Dyno, busy_for, command

Scheduled = tuple[int, str, str, str]  # (t_us, syslog app name "app" | "heroku", procid, text)

# (kind, share of clusters, lines it logs: (fixed, per dyno restarted))
EVENT_MIX: Final = (
    ("deploy", 0.30, (4, 6)),
    ("config", 0.15, (2, 6)),
    ("restart", 0.10, (0, 6)),
    ("cycle", 0.10, (6, 0)),
    ("scale", 0.15, (4, 0)),
    ("crash", 0.10, (5, 0)),
    ("rollback", 0.05, (2, 6)),
    ("build_failed", 0.05, (2, 0)),
)
_CUM: Final = tuple(accumulate(k[1] for k in EVENT_MIX))
R14: Final = "Error R14 (Memory quota exceeded)"
_VARS: Final = (
    "DATABASE_POOL",
    "FEATURE_CHECKOUT_V2",
    "LOG_LEVEL",
    "WEB_CONCURRENCY",
    "SENTRY_DSN",
)
S: Final = 1_000_000  # microseconds in a second


def mean_lines(dynos_per_app: int) -> float:
    """Expected lines of one cluster (to budget the line rate)."""
    return sum(share * (fixed + each * dynos_per_app) for _, share, (fixed, each) in EVENT_MIX)


def restart(
    rng: random.Random, dyno: Dyno, t_us: int, first: str = "Restarting"
) -> list[Scheduled]:
    """A dyno restarting from `first` ("Restarting", "Cycling"); it gets a new boot."""
    dyno.reboot(rng)
    name = dyno.name
    steps = (
        (0, first),
        (1_000, "State changed from up to starting"),
        (rng.randrange(200_000, 900_000), "Stopping all processes with SIGTERM"),
        (rng.randrange(1, 3) * S, "Process exited with status 143"),
        (rng.randrange(3, 6) * S, f"Starting process with command `{command(dyno.process_type)}`"),
        (rng.randrange(7, 14) * S, "State changed from starting to up"),
    )
    return [(t_us + dt, "heroku", name, text) for dt, text in steps]


def _all_restart(rng: random.Random, app: AppState, t_us: int) -> list[Scheduled]:
    out: list[Scheduled] = []
    for dynos in app.formation.values():
        for dyno in dynos:
            out += restart(rng, dyno, t_us + rng.randrange(0, 8 * S))
    return out


def _release(app: AppState, t_us: int, user: str, what: list[Scheduled]) -> list[Scheduled]:
    app.release += 1
    return [*what, (t_us, "app", "api", f"Release v{app.release} created by user {user}")]


def cluster(
    rng: random.Random, app: AppState, t_us: int, max_dynos: int
) -> tuple[list[Scheduled], list[tuple[int, Dyno]]]:
    """The lines of one operation starting at t_us, and dynos it starts (with their up time)."""
    kind = EVENT_MIX[rng.choices(range(len(EVENT_MIX)), cum_weights=_CUM)[0]][0]
    user = rng.choice(app.users)
    api = "app", "api"
    if kind in ("deploy", "build_failed"):
        done = t_us + rng.randrange(40, 150) * S
        lines = [(t_us, *api, f"Build started by user {user}")]
        if kind == "build_failed":
            return [*lines, (done, *api, "Build failed")], []
        lines += [
            (done, *api, "Build succeeded"),
            (done + S, *api, f"Deploy {rng.getrandbits(32):08x} by user {user}"),
        ]
        lines = _release(app, done + S + 200_000, user, lines)
        return lines + _all_restart(rng, app, done + 2 * S), []
    if kind in ("config", "rollback"):
        if kind == "config":
            names = ", ".join(rng.sample(_VARS, rng.randrange(1, 3)))
            action = "Set" if rng.random() < 0.8 else "Remove"
            text = f"{action} {names} config vars by user {user}"
        else:
            text = f"Rollback to v{max(app.release - rng.randrange(1, 4), 1)} by user {user}"
        lines = _release(app, t_us + 300_000, user, [(t_us, *api, text)])
        return lines + _all_restart(rng, app, t_us + S), []
    if kind == "restart":
        return _all_restart(rng, app, t_us), []
    everyone = [d for dynos in app.formation.values() for d in dynos]
    if kind == "cycle":
        return restart(rng, rng.choice(everyone), t_us, "Cycling"), []
    if kind == "crash":
        dyno = rng.choice(everyone)
        back = t_us + rng.randrange(1, 20) * S
        lines = [
            (t_us, "heroku", dyno.name, "Process exited with status 1"),
            (t_us + 2_000, "heroku", dyno.name, "State changed from up to crashed"),
        ]
        return lines + restart(rng, dyno, back, "State changed from crashed to starting")[2:], []
    return _scale(rng, app, t_us, max_dynos, user)


def _scale(
    rng: random.Random, app: AppState, t_us: int, max_dynos: int, user: str
) -> tuple[list[Scheduled], list[tuple[int, Dyno]]]:
    pt = rng.choice(list(app.formation))
    dynos = app.formation[pt]
    lowest = 1 if pt == "web" else 0
    grow = len(dynos) <= lowest or (len(dynos) < max_dynos and rng.random() < 0.5)
    lines: list[Scheduled] = []
    started: list[tuple[int, Dyno]] = []
    if grow:
        dyno = app.add_dyno(rng, pt, busy_for(rng, pt))
        up = t_us + rng.randrange(6, 12) * S
        lines += [
            (
                t_us + rng.randrange(2, 4) * S,
                "heroku",
                dyno.name,
                f"Starting process with command `{command(pt)}`",
            ),
            (up, "heroku", dyno.name, "State changed from starting to up"),
        ]
        started.append((up, dyno))
    else:
        dyno = dynos.pop()
        dyno.alive = False
        lines += [
            (t_us + S, "heroku", dyno.name, "Stopping all processes with SIGTERM"),
            (t_us + 2 * S, "heroku", dyno.name, "Process exited with status 143"),
            (t_us + 2 * S + 5_000, "heroku", dyno.name, "State changed from up to down"),
        ]
    head = (t_us, "app", "api", f"Scaled to {app.formation_text()} by user {user}")
    return [head, *lines], started
