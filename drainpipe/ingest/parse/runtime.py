"""Turn a log-runtime-metrics line of one dyno into a DynoMemory or DynoLoad sample.

Sizes are in MB as Heroku logs them; `kB`, `GB` and `B` (bytes, any case) are converted
at 1024 per step, since Heroku's MB are binary (a 512 MB quota is 512 MiB). A bare
number is taken as MB. Page counts carry the unit `pages` or none.
"""

from __future__ import annotations

import re
from typing import Final

from drainpipe.ingest.parse.dyno import process_type
from drainpipe.ingest.parse.logfmt import parse_logfmt
from drainpipe.model import DynoLoad, DynoMemory, Skipped

SKIP_RUNTIME: Final = Skipped("runtime_metrics")

_QUANTITY: Final = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([A-Za-z]*)", re.ASCII)
MB_PER_UNIT: Final = {"": 1.0, "b": 1 / 1024**2, "kb": 1 / 1024, "mb": 1.0, "gb": 1024.0}
_PAGES_PER_UNIT: Final = {"": 1.0, "pages": 1.0}
_BARE: Final = {"": 1.0}  # load averages carry no unit
_MEMORY_PREFIX: Final = "sample#memory_"
_LOAD_PREFIX: Final = "sample#load_avg_"


def _quantity(raw: str | None, units: dict[str, float]) -> float | None:
    """`21.00MB` in the unit `units` maps to; None when empty or not understood."""
    if not raw:
        return None
    found = _QUANTITY.fullmatch(raw)
    if found is None:
        return None
    scale = units.get(found.group(2).lower())
    return None if scale is None else float(found.group(1)) * scale


def dyno_names(source: str | None, procid: str) -> tuple[str, str] | None:
    """(process type, source) from the value of `source=`, else from the syslog procid."""
    kind = process_type(source) if source else None
    if kind is not None and source is not None:
        return kind, source
    kind = process_type(procid)
    return None if kind is None else (kind, procid)


def _memory(ts_ms: int, fields: dict[str, str], procid: str) -> DynoMemory | Skipped:
    names = dyno_names(fields.get("source"), procid)
    if names is None:
        return SKIP_RUNTIME
    mb, pages = MB_PER_UNIT, _PAGES_PER_UNIT
    sample = DynoMemory(
        ts_ms=ts_ms,
        process_type=names[0],
        source=names[1],
        memory_total=_quantity(fields.get("sample#memory_total"), mb),
        memory_rss=_quantity(fields.get("sample#memory_rss"), mb),
        memory_cache=_quantity(fields.get("sample#memory_cache"), mb),
        memory_swap=_quantity(fields.get("sample#memory_swap"), mb),
        memory_pgpgin=_quantity(fields.get("sample#memory_pgpgin"), pages),
        memory_pgpgout=_quantity(fields.get("sample#memory_pgpgout"), pages),
        memory_quota=_quantity(fields.get("sample#memory_quota"), mb),
    )
    values = (
        sample.memory_total,
        sample.memory_rss,
        sample.memory_cache,
        sample.memory_swap,
        sample.memory_pgpgin,
        sample.memory_pgpgout,
        sample.memory_quota,
    )
    return SKIP_RUNTIME if all(v is None for v in values) else sample


def _load(ts_ms: int, fields: dict[str, str], procid: str) -> DynoLoad | Skipped:
    names = dyno_names(fields.get("source"), procid)
    if names is None:
        return SKIP_RUNTIME
    sample = DynoLoad(
        ts_ms=ts_ms,
        process_type=names[0],
        source=names[1],
        load_avg_1m=_quantity(fields.get("sample#load_avg_1m"), _BARE),
        load_avg_5m=_quantity(fields.get("sample#load_avg_5m"), _BARE),
        load_avg_15m=_quantity(fields.get("sample#load_avg_15m"), _BARE),
    )
    values = (sample.load_avg_1m, sample.load_avg_5m, sample.load_avg_15m)
    return SKIP_RUNTIME if all(v is None for v in values) else sample


# source=web.1 dyno=heroku.12345.8f6b5b7e-54c6-4b8c-9b1e-2c1f2a6e3f10 sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99  # noqa: E501
# source=web.1 dyno=heroku.12345.8f6b5b7e-54c6-4b8c-9b1e-2c1f2a6e3f10 sample#memory_total=21.00MB sample#memory_rss=21.22MB sample#memory_cache=0.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages sample#memory_quota=512.00MB  # noqa: E501
def parse_runtime(ts_ms: int, procid: str, text: str) -> DynoMemory | DynoLoad | Skipped | None:
    """The sample a runtime-metrics line carries; None when `text` is not such a line.

    Skipped("runtime_metrics") when the line has memory or load keys but no value that
    can be read, or no usable process type.
    """
    if _MEMORY_PREFIX not in text and _LOAD_PREFIX not in text:
        return None
    fields = parse_logfmt(text)
    if any(key.startswith(_MEMORY_PREFIX) for key in fields):
        return _memory(ts_ms, fields, procid)
    if any(key.startswith(_LOAD_PREFIX) for key in fields):
        return _load(ts_ms, fields, procid)
    return None  # the prefix only appeared inside some value
