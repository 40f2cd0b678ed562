"""Coverage-guided fuzzing (atheris) of the framing and line readers: equal answers, no crash.

Each input picks one of three checks by its first byte:
- framing: the compiled `split_lines`, the numpy one and the frame-by-frame reader give
  the same frames (the fast two may only decline), and `split_frames` raises nothing but
  FramingError;
- router lines: the compiled router reader, where it reads the lines, equals the pattern;
- whole bodies: `records.build` (bulk readers, compiled where built) equals
  `records.build_reference` (one line at a time), records, counts and skips alike.

Run it longer than CI does with
    .venv/bin/python -m tests.ingest.fuzz.readers -max_total_time=3600 tests/ingest/fuzz/corpus
(libFuzzer flags; a failing input is written to crash-<sha1> in the working directory).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["drainpipe"]):
    from drainpipe.ingest import framing, native, records
    from drainpipe.ingest.parse import bulkrouter

NOW_MS = 1_795_017_600_000  # the seeds' lines are dated around it
FUTURE_MS = 300_000


class Mismatch(AssertionError):
    pass


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 400 else text[:400] + f"... ({len(text)} chars)"


def _framing(body: bytes) -> None:
    try:
        reference: list[bytes] | None = framing._split_octets(body)
    except framing.FramingError:
        reference = None
    numpy_lines = framing._split_lines(body)
    if numpy_lines is not None and numpy_lines != reference:
        raise Mismatch(f"numpy framing {_short(numpy_lines)} != {_short(reference)}")
    if native.scan is not None:
        compiled = native.scan.split_lines(body)
        if compiled != numpy_lines:
            raise Mismatch(f"compiled framing {_short(compiled)} != numpy {_short(numpy_lines)}")
    try:
        got = framing.split_frames(body)
    except framing.FramingError:
        got = None
    if got != reference:
        raise Mismatch(f"split_frames {_short(got)} != {_short(reference)}")


def _lines(data: bytes) -> list[bytes]:
    """Frames of a fuzzed input: its lines, each keeping its newline."""
    return [line for line in data.splitlines(keepends=True) if line][:64]


def _router(data: bytes) -> None:
    lines = _lines(data)
    if not lines:
        return
    read = bulkrouter.by_scan(lines)
    if read is None:
        return  # the compiled reader left these lines to the pattern
    want = bulkrouter.by_pattern(bulkrouter.joined_lines(lines, b"".join(lines)), len(lines))
    for name in ("index", "ts_ms", "status", "code", "pt_id"):
        if getattr(read, name).tolist() != getattr(want, name).tolist():
            raise Mismatch(f"router {name}: {getattr(read, name)} != {getattr(want, name)}")
    a, b = read.service_ms.tolist(), want.service_ms.tolist()
    if [x if x == x else None for x in a] != [x if x == x else None for x in b]:
        raise Mismatch(f"router service_ms: {a} != {b}")
    names = (
        [read.process_types[i] for i in read.pt_id],
        [want.process_types[i] for i in want.pt_id],
    )
    if names[0] != names[1] or (read.skipped, read.rest) != (want.skipped, want.rest):
        raise Mismatch(f"router process types, skips or rest differ: {names}")


def _bodies(data: bytes) -> None:
    lines = _lines(data)
    fast = records.build("app", lines, NOW_MS, FUTURE_MS, lateness_ms=300_000)
    slow = records.build_reference("app", lines, NOW_MS, FUTURE_MS, lateness_ms=300_000)
    if fast.records != slow.records:
        raise Mismatch("build and build_reference give different records")
    if (dict(fast.lines), dict(fast.skipped), fast.upstream_dropped) != (
        dict(slow.lines),
        dict(slow.skipped),
        slow.upstream_dropped,
    ):
        raise Mismatch(f"counts differ: {fast.lines} {fast.skipped} != {slow.lines} {slow.skipped}")


CHECKS = (_framing, _router, _bodies)


def one_input(data: bytes) -> None:
    if not data:
        return
    CHECKS[data[0] % len(CHECKS)](data[1:])


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
