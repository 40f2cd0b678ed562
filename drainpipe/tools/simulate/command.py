"""`drainpipe simulate`: run the generator into a drain URL or into files, and report (I/O edge)."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from drainpipe.clock import SYSTEM, Clock
from drainpipe.store.apps import AppError, postgres_registry, sqlite_registry
from drainpipe.tools.simulate.framing import (
    DRAIN_SUFFIX,
    DrainBody,
    Framer,
    drain_token,
    record_line,
)
from drainpipe.tools.simulate.generator import Generator, SimulateError, Workload
from drainpipe.tools.simulate.post import Poster, basic_auth, check_reachable, parse_url
from drainpipe.tools.simulate.progress import Progress, duration


@dataclass(frozen=True, slots=True)
class Options:
    url: str | None = None
    out: Path | None = None
    secret: str | None = None
    rate: float = 1000.0
    duration_s: float = 60.0
    lines: int | None = None  # default rate x duration
    apps: int = 1
    dynos: int = 2
    process_types: tuple[str, ...] = ("web", "worker")
    connections: int = 4
    seed: int = 1
    start: str | None = None  # ISO 8601; default now (POST) or so the files end now (--out)
    body_lines: int = 500
    router_only: bool = False
    create_apps: bool = False
    apps_path: Path | None = None  # the registry --create-apps writes to
    registry_dsn: str | None = None  # or the scale-out one in PostgreSQL (--postgres)
    app_prefix: str = "sim"
    event_interval_s: float = 600.0


def _start_us(opts: Options, total: int, clock: Clock) -> int:
    if opts.start:
        try:
            dt = datetime.fromisoformat(opts.start.replace("Z", "+00:00"))
        except ValueError:
            raise SimulateError(
                f"--start {opts.start!r} is not an ISO 8601 time (like 2026-11-21T10:00:00Z)"
            ) from None
        return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1e6)
    now_us = clock.now_ms() * 1000
    return now_us if opts.out is None else now_us - int(total / opts.rate * 1e6)


def _create_apps(opts: Options, names: list[str], stdout: TextIO) -> list[str]:
    """Create the apps in the registry, print their credentials, return their drain secrets."""
    if opts.registry_dsn is not None:
        registry, where = postgres_registry(opts.registry_dsn), "the PostgreSQL registry"
    elif opts.apps_path is not None:
        registry, where = sqlite_registry(opts.apps_path), str(opts.apps_path)
    else:
        raise SimulateError("--create-apps needs --data-dir (where the app registry lives)")
    try:
        taken = [n for n in names if registry.by_name(n) is not None]
        if taken:
            raise SimulateError(
                f"apps {', '.join(taken)} already exist in {where}; "
                "pick another --app-prefix (their secrets are only shown when created)"
            )
        secrets = []
        for name in names:
            try:
                new = registry.create(name)
            except AppError as exc:
                raise SimulateError(f"{exc}; pick another --app-prefix") from None
            secrets.append(new.drain_secret)
            print(
                json.dumps(
                    {
                        "name": name,
                        "id": new.app.id,
                        "drain_secret": new.drain_secret,
                        "api_token": new.api_token,
                    }
                ),
                file=stdout,
                flush=True,
            )
        return secrets
    finally:
        registry.close()


def _bodies(gen: Generator, framer: Framer, total: int) -> Iterator[DrainBody]:
    for line in itertools.islice(gen.lines(), total):
        yield from framer.add(line)
    yield from framer.flush()


def _kinds(c: Counter[str]) -> str:
    return ", ".join(f"{k} {c[k]:,}" for k in ("router", "memory", "load", "event") if c[k]) or "-"


def run(
    opts: Options,
    stdout: TextIO,
    stderr: TextIO,
    live: bool | None = None,
    clock: Clock = SYSTEM,
) -> int:
    """Run `drainpipe simulate`; 0 when every line was delivered or written, else 1."""
    if (opts.url is None) == (opts.out is None):
        raise SimulateError("give either --url URL (POST to a drain) or --out DIR (write files)")
    if opts.rate <= 0 or opts.duration_s <= 0:
        raise SimulateError(f"--rate {opts.rate:g} and --duration {opts.duration_s:g} must be > 0")
    total = opts.lines if opts.lines is not None else round(opts.rate * opts.duration_s)
    if total < 1:
        raise SimulateError(f"{total} lines to generate: raise --lines, --rate or --duration")
    names = [f"{opts.app_prefix}-{i + 1}" for i in range(opts.apps)]
    workload = Workload(
        start_us=_start_us(opts, total, clock),
        rate=opts.rate,
        apps=opts.apps,
        dynos=opts.dynos,
        process_types=opts.process_types,
        seed=opts.seed,
        router_only=opts.router_only,
        event_interval_s=opts.event_interval_s,
        app_names=tuple(names),
    )
    workload.check()
    target = parse_url(opts.url) if opts.url is not None else None
    if opts.create_apps and opts.secret is not None:
        raise SimulateError("--secret and --create-apps both give drain credentials: use one")
    if target is not None and not opts.create_apps:
        secret = opts.secret or target.password
        if secret is None:
            raise SimulateError(
                "POSTing needs drain credentials: --secret S (one app), a URL with user:secret@, "
                "or --create-apps --data-dir DIR to create the apps first"
            )
        if opts.apps != 1:
            raise SimulateError(
                f"a drain secret belongs to one app, but --apps is {opts.apps}: use --apps 1, "
                "or --create-apps --data-dir DIR to create an app for each"
            )
    if target is not None:
        check_reachable(target)
    secrets = _create_apps(opts, names, stdout) if opts.create_apps else []
    gen = Generator(workload)
    framer = Framer(opts.apps, f"{opts.seed}:{workload.start_us}:frames", opts.body_lines)
    progress = Progress("simulate", stderr, live=live)
    if target is None:
        assert opts.out is not None
        return _write(opts, gen, framer, total, names, progress, stdout)
    tokens = [drain_token(opts.seed, i) for i in range(opts.apps)]
    user = target.user if target.password is not None else "drain"
    auth = [basic_auth(user, s) for s in secrets] or [
        basic_auth(user, opts.secret or target.password or "")
    ]
    wall0 = clock.monotonic()
    poster = Poster(target, auth, tokens, opts.connections)
    stats = poster.run(
        _bodies(gen, framer, total),
        lambda body: wall0 + (body.last_us - workload.start_us) / 1e6,
        progress,
        total,
    )
    took = progress.elapsed()
    answers = ", ".join(f"{k} x{v}" for k, v in sorted(stats.answers.items())) or "none"
    progress.finish(
        f"simulate: {'interrupted: ' if stats.interrupted else ''}{stats.acked_lines:,} of "
        f"{total:,} lines acknowledged by {target.display} in {duration(took)} "
        f"({stats.acked_lines / max(took, 1e-9):,.0f} lines/s; {_kinds(stats.acked_kinds)}); "
        f"{stats.acked_bodies:,} bodies acknowledged, {stats.dropped_bodies:,} dropped "
        f"({stats.dropped_lines:,} lines), {stats.retries:,} retries, "
        f"{stats.reconnects:,} reconnects; answers other than 2xx: {answers}",
        stdout,
    )
    return 0 if stats.acked_lines == total else 1


def _write(
    opts: Options,
    gen: Generator,
    framer: Framer,
    total: int,
    names: list[str],
    progress: Progress,
    stdout: TextIO,
) -> int:
    """Write `<app>.drain` (JSON lines of bodies) or, router-only, `<app>.log` (syslog lines)."""
    assert opts.out is not None
    opts.out.mkdir(parents=True, exist_ok=True)
    suffix = ".log" if opts.router_only else DRAIN_SUFFIX
    paths = [opts.out / f"{name}{suffix}" for name in names]
    files = [open(p, "wb") for p in paths]  # noqa: SIM115 -- closed below, one per app
    kinds: Counter[str] = Counter()
    bodies = done = 0
    stopped = ""
    try:
        if opts.router_only:
            for line in itertools.islice(gen.lines(), total):
                files[line.app].write(line.text.encode())
                kinds[line.kind] += 1
                done += 1
                if done % 4096 == 0:
                    progress.update(done, done / total)
        else:
            tokens = [drain_token(opts.seed, i) for i in range(opts.apps)]
            for body in _bodies(gen, framer, total):
                files[body.app].write(record_line(body, names[body.app], tokens[body.app]))
                kinds.update(body.kinds)
                bodies += 1
                done += body.count
                progress.update(done, done / total)
    except KeyboardInterrupt:
        stopped = "interrupted: "
    finally:
        for f in files:
            f.close()
    took = progress.elapsed()
    what = "syslog lines" if opts.router_only else f"lines in {bodies:,} drain bodies"
    progress.finish(
        f"simulate: {stopped}wrote {done:,} {what} ({_kinds(kinds)}) to "
        f"{', '.join(str(p) for p in paths)} in {duration(took)} "
        f"({done / max(took, 1e-9):,.0f} lines/s)",
        stdout,
    )
    return 1 if stopped else 0
