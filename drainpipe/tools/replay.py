"""`drainpipe replay`: backfill files of drain bodies, syslog lines or `heroku logs` output.

Each file's format is detected from its first line. Lines go through the same pipeline
as a drain request, in-process: `records.build` and the acceptor (bodies keep their
Logplex-Frame-Id, so a body already accepted is not counted twice), then the rollup
and sink workers run until everything replayed is in the store, and stop cleanly.
The embedded bus has one writer (it holds a lock), so replay refuses a data directory
that `drainpipe up` is running on.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import BinaryIO, TextIO

import msgspec

from drainpipe.bus import BusUnavailable
from drainpipe.bus.embedded import BusLocked
from drainpipe.clock import SYSTEM, Clock
from drainpipe.config import Config
from drainpipe.ingest import records
from drainpipe.ingest.acceptor import LocalAcceptor, recent_frames
from drainpipe.ingest.framing import FramingError, split_frames
from drainpipe.model import FRAMES_TOPIC
from drainpipe.rollup.worker import RAW_TOPICS
from drainpipe.service.pipeline import Pipeline
from drainpipe.store.apps import sqlite_registry
from drainpipe.tools.simulate.framing import record_decoder
from drainpipe.tools.simulate.progress import Progress, duration

MAX_IN_FLIGHT = 16  # bus appends awaited at once: enough to share fsyncs
DETECT_BYTES = 64 * 1024
_SYSLOG = re.compile(rb"<[0-9]{1,3}>[0-9]{1,2} ")
# 2026-11-21T10:00:00.123456+00:00 heroku[router]: at=info method=GET path="/" ...
_HEROKU = re.compile(
    rb"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2}))"
    rb" ([A-Za-z0-9_.-]+)\[([^\]\s]+)\]:(?: (.*?))?\r?\n?",
    re.DOTALL,
)
_ANSI = re.compile(rb"\x1b\[[0-9;]*m")  # `heroku logs` colours sources on a terminal


class ReplayError(ValueError):
    """Replay cannot start or go on; the message says what to do."""


class Format(Enum):
    DRAIN_JSON = "drain bodies (JSON lines, as `drainpipe simulate --out` writes them)"
    SYSLOG = "syslog lines (<PRI>1 TIMESTAMP host app proc - msg)"
    HEROKU = "`heroku logs` output (TIMESTAMP source[proc]: msg), read as syslog lines"


def detect(path: Path) -> Format:
    """The format of a file, from its first line that is not blank."""
    try:
        with open(path, "rb") as f:
            head = f.read(DETECT_BYTES)
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror}") from None
    first = next((line for line in head.splitlines() if line.strip()), b"")
    first = _ANSI.sub(b"", first.lstrip())
    if not first:
        raise ReplayError(f"{path} has no lines to replay")
    if first.startswith(b"{"):
        return Format.DRAIN_JSON
    if _SYSLOG.match(first):
        return Format.SYSLOG
    if _HEROKU.match(first):
        return Format.HEROKU
    raise ReplayError(
        f"{path}: the first line is neither a drain body (a JSON line of `drainpipe simulate`), "
        f"a syslog line (<PRI>1 TIMESTAMP host app proc - msg) nor `heroku logs` output "
        f"(TIMESTAMP source[proc]: msg): {first[:120]!r}"
    )


# 2026-11-21T10:00:00.123456+00:00 app[web.1]: Completed 200 OK in 12ms
def heroku_to_syslog(raw: bytes) -> bytes | None:
    """The syslog form of one `heroku logs` line; None when it is not in that form."""
    if b"\x1b" in raw:
        raw = _ANSI.sub(b"", raw)
    m = _HEROKU.fullmatch(raw)
    if m is None:
        return None
    ts, source, proc, text = m.groups()
    pri = b"158" if proc == b"router" else b"45" if source == b"heroku" else b"190"
    return b"<%s>1 %s host %s %s - %s\n" % (pri, ts, source, proc, text or b"")


@dataclass
class Chunk:
    """Frames for one `records.build` call, lines that never became frames, and the file offset."""

    frames: list[bytes]
    skipped: Counter[str] = field(default_factory=Counter)
    offset: int = 0
    frame_id: str = ""


def _lines(f: BinaryIO, size: int, convert: Callable[[bytes], bytes | None]) -> Iterator[Chunk]:
    chunk, offset = Chunk([]), 0
    for raw in f:
        offset += len(raw)
        if not raw.strip():
            continue
        frame = convert(raw)
        if frame is None:
            chunk.skipped["heroku_logs_line"] += 1
        else:
            chunk.frames.append(frame)
        if len(chunk.frames) >= size:
            chunk.offset = offset
            yield chunk
            chunk = Chunk([])
    chunk.offset = offset
    yield chunk


def _syslog(raw: bytes) -> bytes:
    return raw.rstrip(b"\r\n") + b"\n"


def _drain_json(f: BinaryIO, _: int) -> Iterator[Chunk]:
    offset = 0
    for raw in f:
        offset += len(raw)
        if not raw.strip():
            continue
        try:
            rec = record_decoder.decode(raw)
            frames = split_frames(rec.body.encode())
        except (msgspec.DecodeError, FramingError):
            yield Chunk([], Counter(drain_record=1), offset)
            continue
        if rec.msg_count != len(frames):  # the ingress would answer 400: nothing is used
            yield Chunk([], Counter(msg_count=len(frames)), offset)
            continue
        yield Chunk(frames, Counter(), offset, rec.frame_id[:128])


class _Worker:
    """A pipeline worker on its own thread with its own stop event; remembers a crash."""

    def __init__(self, name: str, target: Callable[[threading.Event], None]) -> None:
        self.name = name
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._target = target
        self.thread = threading.Thread(target=self._run, name=f"replay-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._target(self.stop)
        except BaseException as exc:
            self.error = exc

    def check(self) -> None:
        if self.error is not None or not self.thread.is_alive():
            raise ReplayError(f"the {self.name} worker stopped: {self.error!r}")

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()


def _rolled_up(pipeline: Pipeline) -> bool:
    """Has the rollup read every raw message on the bus?"""
    parts = pipeline.rollup.core.parts
    ends = dict(pipeline.bus.wal.next_offsets)
    return all(
        (st := parts.get(tp)) is not None and st.next_offset >= end
        for tp, end in ends.items()
        if tp[0] in RAW_TOPICS
    )


def _stored(pipeline: Pipeline) -> bool:
    """Has the sink committed every summary and event on the bus (after storing them)?"""
    committed = pipeline.bus.load_positions(pipeline.sink.group)
    ends = dict(pipeline.bus.wal.next_offsets)
    return all(
        tp in committed and committed[tp].offset >= end
        for tp, end in ends.items()
        if tp[0] in pipeline.sink.topics
    )


def _wait(
    worker: _Worker, done: Callable[[Pipeline], bool], pipeline: Pipeline, show: Callable[[], None]
) -> None:
    while not done(pipeline):
        worker.check()
        show()
        time.sleep(0.02)


@dataclass
class Report:
    lines: int = 0  # read: frames built plus lines that never became frames
    used: Counter[str] = field(default_factory=Counter)  # by kind; "other" is app output
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    late: Counter[str] = field(default_factory=Counter)  # by rollup family
    upstream_dropped: int = 0  # Logplex L10 reports in the lines
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False

    def text(self, files: int, size: int, app: str, took: float) -> str:
        kinds = ("router", "custom", "memory", "load", "event")
        used = ", ".join(f"{k} {self.used[k]:,}" for k in kinds if self.used[k])
        skipped = ", ".join(f"{k} {n:,}" for k, n in sorted(self.skipped.items())) or "none"
        late = ", ".join(f"{k} {n:,}" for k, n in sorted(self.late.items()) if n) or "none"
        out = [
            f"replay: {'interrupted: ' if self.interrupted else ''}{self.lines:,} lines from "
            f"{files} file{'s' * (files != 1)} ({size / 1e6:,.1f} MB) into app {app} in "
            f"{duration(took)} ({self.lines / max(took, 1e-9):,.0f} lines/s)",
            f"  used: {used or 'none'}; app output without metrics: {self.used['other']:,}",
            f"  skipped: {skipped}",
            f"  late-dropped by the rollup: {late}",
        ]
        if self.upstream_dropped:
            out.append(f"  Logplex reported {self.upstream_dropped:,} messages lost upstream (L10)")
        if any(self.late.values()):
            out.append(
                "  (late: more than DRAINPIPE_LATENESS_S behind the newest time already seen for "
                "the app; replay files oldest first, or into a data directory without newer data)"
            )
        return "\n".join(out + [f"  {n}" for n in self.notes])


def _chunks(f: BinaryIO, fmt: Format, size: int) -> Iterator[Chunk]:
    if fmt is Format.DRAIN_JSON:
        return _drain_json(f, size)
    return _lines(f, size, heroku_to_syslog if fmt is Format.HEROKU else _syslog)


def run(
    paths: list[Path],
    app_name: str,
    config: Config,
    stderr: TextIO,
    batch_lines: int = 500,
    live: bool | None = None,
    clock: Clock = SYSTEM,
) -> int:
    """Replay `paths` into `config.data_dir` as app `app_name`; 0 when done, 1 if interrupted."""
    if not paths:
        raise ReplayError("name at least one file to replay")
    if not 1 <= batch_lines <= 100_000:
        raise ReplayError(f"--batch-lines {batch_lines} must be between 1 and 100000")
    formats = [(p, detect(p)) for p in paths]
    for p, fmt in formats:
        print(f"replay: {p}: {fmt.value}", file=stderr)
    if not config.apps_path.exists():
        raise ReplayError(
            f"no app registry in {config.data_dir}: create the app first with "
            f"`drainpipe apps create {app_name} --data-dir {config.data_dir}`"
        )
    registry = sqlite_registry(config.apps_path)
    try:
        app = registry.by_name(app_name)
    finally:
        registry.close()
    if app is None:
        raise ReplayError(
            f"no app named {app_name!r} in {config.apps_path}: check --app and --data-dir, "
            f"or create it with `drainpipe apps create {app_name} --data-dir {config.data_dir}`"
        )
    try:
        pipeline = Pipeline(
            config, clock=clock
        )  # takes the bus's lock: one writer per data directory
    except BusLocked as exc:
        raise ReplayError(
            f"{exc}. Replay writes the embedded bus itself: stop that `drainpipe up` first, "
            "or send the lines to it over HTTP instead"
        ) from None
    try:
        size = sum(p.stat().st_size for p, _ in formats)
        progress = Progress("replay", stderr, live=live)
        report = _replay(pipeline, app.id, formats, size, batch_lines, progress)
        progress.finish(report.text(len(paths), size, app_name, progress.elapsed()))
        return 1 if report.interrupted else 0
    finally:
        pipeline.stop()


def _replay(
    pipeline: Pipeline,
    owner: str,
    formats: list[tuple[Path, Format]],
    size: int,
    batch_lines: int,
    progress: Progress,
) -> Report:
    report = Report()
    rollup = _Worker("rollup", pipeline.rollup.run)
    sink = _Worker("sink", pipeline.sink.run)
    try:
        # The rollup first re-reads the bus from its commit, where rows of windows closed
        # since are dropped again: not this replay's drops, so they are not reported.
        _wait(rollup, _rolled_up, pipeline, lambda: progress.update(0, 0.0, "catching up"))
        before = Counter(pipeline.rollup.core.dropped_late)
        _produce(pipeline, owner, formats, size, batch_lines, progress, report)
        _wait(rollup, _rolled_up, pipeline, lambda: progress.update(report.lines, 1.0, "rollup"))
        rollup.finish()  # its last flush makes every window it holds durable
        report.late = Counter(pipeline.rollup.core.dropped_late) - before
        _wait(sink, _stored, pipeline, lambda: progress.update(report.lines, 1.0, "storing"))
    except KeyboardInterrupt:
        report.interrupted = True
        report.notes.append(
            "what was replayed is durable in the bus: `drainpipe up` on this data directory "
            "finishes storing it"
        )
    finally:
        rollup.finish()
        sink.finish()
    return report


def _produce(
    pipeline: Pipeline,
    owner: str,
    formats: list[tuple[Path, Format]],
    size: int,
    batch_lines: int,
    progress: Progress,
    report: Report,
) -> None:
    """Every file's lines through records.build and the acceptor; durable when this returns."""
    acceptor = LocalAcceptor(
        pipeline.bus.producer(), recent_frames(pipeline.bus.tail(FRAMES_TOPIC))
    )
    max_future_ms = pipeline.config.max_future_s * 1000
    max_age_ms = pipeline.config.max_age_ms
    lateness_ms = pipeline.config.lateness_s * 1000
    pending: deque[tuple[Future[bool], records.Parsed, int]] = deque()

    def settle() -> None:  # count a request's lines once the bus has it, as the ingress does
        fut, parsed, frames = pending.popleft()
        try:
            accepted = fut.result()
        except BusUnavailable as exc:
            raise ReplayError(f"the bus did not store replayed lines: {exc}") from None
        if not accepted:
            report.skipped["duplicate_frame"] += frames
            return
        report.used.update(parsed.lines)
        report.skipped.update(parsed.skipped)
        report.upstream_dropped += parsed.upstream_dropped

    done_bytes = 0
    for path, fmt in formats:
        with open(path, "rb") as f:
            for chunk in _chunks(f, fmt, batch_lines):
                report.lines += len(chunk.frames) + sum(chunk.skipped.values())
                report.skipped.update(chunk.skipped)
                if chunk.frames:
                    now_ms = pipeline.clock.now_ms()
                    frame = chunk.frame_id or ""
                    parsed = records.build(
                        owner, chunk.frames, now_ms, max_future_ms, max_age_ms, lateness_ms, frame
                    )
                    lost = records.skip_records(owner, now_ms, parsed.skipped, frame)
                    fut = acceptor.submit(owner, chunk.frame_id or None, parsed.records + lost)
                    pending.append((fut, parsed, len(chunk.frames)))
                    while len(pending) > MAX_IN_FLIGHT:
                        settle()
                progress.update(report.lines, (done_bytes + chunk.offset) / max(size, 1), path.name)
        done_bytes += path.stat().st_size
    while pending:
        settle()
