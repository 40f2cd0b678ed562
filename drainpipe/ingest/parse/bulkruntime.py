"""Read the everyday log-runtime-metrics lines of a drain request at once, into numpy columns.

The counterpart of parse.bulkrouter for `heroku <dyno>` memory and load samples: one compiled
bytes pattern runs with `findall` over the joined frames, one match per line. A line in
the shape Heroku logs (`source=` and `dyno=`, each optional, then all seven memory
samples or all three load averages in their usual order, every value a plain number
with a size unit `parse_runtime` knows) yields its timestamp parts, procid, source and
values; any other line matches the catch-all and is left to the per-line parser, as are
lines whose timestamp does not name a real instant. Every value read here equals what
`parse_message` reads from the line; tests/ingest/parse/test_bulk.py and
tests/ingest/test_records.py check that on generated bodies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress
from typing import Final

import numpy as np

from drainpipe.ingest.parse.bulkrouter import (
    PRI,
    TIMESTAMP,
    BoolArray,
    both,
    fractions_ms,
    joined_lines,
    offsets_ms,
    seconds_ms,
)
from drainpipe.ingest.parse.runtime import MB_PER_UNIT, dyno_names
from drainpipe.model import FloatArray, IntArray

# A plain number as runtime._QUANTITY reads it; the unit is captured apart. Only units
# that convert are let through, so a value read here is never None.
_NUMBER: Final = rb"([0-9]++(?:\.[0-9]*+|)|\.[0-9]++)"
_SIZE: Final = _NUMBER + rb"([KkMmGg]?[Bb]|)"
_PAGES: Final = rb"(?:[0-9]++(?:\.[0-9]*+|)|\.[0-9]++)(?:[Pp][Aa][Gg][Ee][Ss]|)"
# A nil procid (`-`) is left to the per-line parser, which knows it names no dyno.
# Procid and source are limited to the characters of dyno names, which decode the same
# way in every codec path and hold no whitespace; the dyno value to printable ASCII
# without `"`, so logfmt reads it as one bare value like this pattern does. Router and
# logplex lines go elsewhere in parse_message whatever their text says.
_RUNTIME: Final = (
    rb"[^ \n]++ heroku (?!(?:router|logplex) )(?!- )([A-Za-z0-9_.-]++) [^ \n]++ "
    rb"(?:source=([A-Za-z0-9_.-]*+) |)(?:dyno=[!#-~]*+ |)"
    rb"(?:sample#memory_total=" + _SIZE + rb" sample#memory_rss=" + _SIZE
    + rb" sample#memory_cache=" + _SIZE + rb" sample#memory_swap=" + _SIZE
    + rb" sample#memory_pgpgin=" + _PAGES + rb" sample#memory_pgpgout=" + _PAGES
    + rb" sample#memory_quota=" + _SIZE
    + rb"|sample#load_avg_1m=" + _NUMBER + rb" sample#load_avg_5m=" + _NUMBER
    + rb" sample#load_avg_15m=" + _NUMBER + rb")\r*+\n"
)  # fmt: skip
# One match per line: a runtime-metrics line in the usual shape, or any other (all "").
_LINE: Final = re.compile(PRI + TIMESTAMP + _RUNTIME + rb"|[^\n]*+\n")


@dataclass(frozen=True, slots=True)
class SampleColumns:
    """Samples of one kind, in frame order: frame index, time, process type id (into
    RuntimeColumns.process_types) and one column per batch column after `ts_ms`."""

    index: IntArray
    ts_ms: IntArray
    pt_id: IntArray
    values: dict[str, FloatArray | IntArray]


@dataclass(frozen=True, slots=True)
class RuntimeColumns:
    """Memory and load samples read in bulk from a request's frames, and what is left.

    `skipped` counts lines read here that carry no sample (Skipped("runtime_metrics"):
    neither source nor procid names a process type). `rest` lists, in order, the frames
    left for the per-line parser.
    """

    memory: SampleColumns
    load: SampleColumns
    process_types: list[str]
    skipped: int
    rest: list[int]


def _floats(numbers: Iterable[bytes], units: Iterable[bytes] | None, count: int) -> FloatArray:
    """Numbers in MB, scaled as runtime._quantity scales them; `units` None: bare."""
    values = np.fromiter(map(float, numbers), np.float64, count)
    if units is None:
        return values
    units = tuple(units)
    scales = {unit: MB_PER_UNIT[unit.decode().lower()] for unit in set(units)}
    if len(scales) == 1:
        (scale,) = scales.values()
        return values if scale == 1.0 else values * scale
    return values * np.fromiter(map(scales.__getitem__, units), np.float64, count)


def _process_types(
    procids: tuple[bytes, ...], sources: tuple[bytes, ...]
) -> tuple[IntArray, list[str], BoolArray | None]:
    """Process type ids of each (source, procid) as parse_runtime names them, the types,
    and which lines have one (None: all)."""
    names: list[str] = []
    ids: dict[tuple[bytes, bytes], int] = {}
    pairs = list(zip(sources, procids, strict=True))
    for pair in dict.fromkeys(pairs):
        found = dyno_names(pair[0].decode(), pair[1].decode())
        if found is None:
            ids[pair] = -1
            continue
        if found[0] not in names:
            names.append(found[0])
        ids[pair] = names.index(found[0])
    if len(ids) == 1:
        pt_id = np.full(len(pairs), next(iter(ids.values())), np.int64)
    else:
        pt_id = np.fromiter(map(ids.__getitem__, pairs), np.int64, len(pairs))
    return pt_id, names, None if -1 not in ids.values() else pt_id >= 0


def _samples(
    keep: BoolArray,
    rows: IntArray,
    ts_ms: IntArray,
    pt_id: IntArray,
    columns: dict[str, tuple[tuple[bytes, ...], tuple[bytes, ...] | None]],
) -> SampleColumns:
    """The samples of the rows `keep` selects, with their (numbers, units) columns."""
    count = int(np.count_nonzero(keep))
    chosen = keep.tolist()
    values: dict[str, FloatArray | IntArray] = {
        name: _floats(
            compress(numbers, chosen), None if units is None else compress(units, chosen), count
        )
        for name, (numbers, units) in columns.items()
    }
    return SampleColumns(rows[keep], ts_ms[keep], pt_id[keep], values)


# <45>1 2026-11-21T10:00:00.123456+00:00 host heroku web.1 - source=web.1 dyno=heroku.12345.8f6b5b7e-54c6-4b8c-9b1e-2c1f2a6e3f10 sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99  # noqa: E501
def read_runtime(frames: list[bytes]) -> RuntimeColumns:
    """The samples of the usual runtime-metrics lines among `frames`, and the frames left."""
    n = len(frames)
    joined = b"".join(frames)
    if b" sample#memory_total=" not in joined and b" sample#load_avg_1m=" not in joined:
        return _no_samples(n)
    joined = joined_lines(frames, joined)
    found = _LINE.findall(joined)
    if len(found) != n:  # a match ran over a newline: no line is read in bulk
        return _no_samples(n)
    columns = tuple(zip(*found, strict=True))
    rows = np.arange(n)
    if b"" in columns[3]:  # procid: lines left for the per-line parser
        read = list(map(bool, columns[3]))
        rows = rows[read]
        if not len(rows):
            return _no_samples(n)
        columns = tuple(tuple(compress(column, read)) for column in columns)
    seconds, fractions, offsets, procids, sources, *sizes, one, five, fifteen = columns
    second_ms, real = seconds_ms(seconds)
    offset_ms, known = offsets_ms(offsets)
    ts_ms = second_ms + offset_ms + fractions_ms(fractions)
    readable = both(real, known)  # None: all
    pt_id, process_types, typed = _process_types(procids, sources)
    sample = both(typed, readable)
    memory = np.fromiter(map(bool, sizes[0]), np.bool_, len(rows))
    if sample is None:
        skipped = 0
        rest = np.flatnonzero(~np.isin(np.arange(n), rows)).tolist() if len(rows) < n else []
        sample = np.ones(len(rows), np.bool_)
    else:
        done = np.zeros(n, np.bool_)
        if readable is None:
            done[rows] = True
            skipped = len(rows) - int(np.count_nonzero(sample))
        else:
            done[rows[readable]] = True
            skipped = int(np.count_nonzero(readable & ~sample))
        rest = np.flatnonzero(~done).tolist()
    total, total_unit, rss, rss_unit, cache, cache_unit, swap, swap_unit, quota, quota_unit = sizes
    return RuntimeColumns(
        memory=_samples(
            sample & memory,
            rows,
            ts_ms,
            pt_id,
            {
                "memory_total": (total, total_unit),
                "memory_rss": (rss, rss_unit),
                "memory_cache": (cache, cache_unit),
                "memory_swap": (swap, swap_unit),
                "memory_quota": (quota, quota_unit),
            },
        ),
        load=_samples(
            sample & ~memory,
            rows,
            ts_ms,
            pt_id,
            {
                "load_avg_1m": (one, None),
                "load_avg_5m": (five, None),
                "load_avg_15m": (fifteen, None),
            },
        ),
        process_types=process_types,
        skipped=skipped,
        rest=rest,
    )


def _no_samples(n: int) -> RuntimeColumns:
    empty = np.zeros(0, np.int64)
    none = SampleColumns(empty, empty, empty, {})
    return RuntimeColumns(none, none, [], 0, list(range(n)))
