"""The compiled readers (drainpipe/ingest/_scan.c) if this install built them, else None.

pip builds them with the machine's C compiler; without one the install still succeeds
and the Python readers do the same work more slowly. `DRAINPIPE_PURE_PYTHON=1` turns
them off, to compare the two or to rule them out.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np
import numpy.typing as npt


class Scan(Protocol):
    """What drainpipe/ingest/_scan.c offers (see its header comment)."""

    def split_lines(self, body: bytes, /) -> list[bytes] | None: ...

    def read_router(
        self, frames: list[bytes], out: npt.NDArray[np.int64], /
    ) -> list[bytes] | None: ...


def _load() -> Scan | None:
    if os.environ.get("DRAINPIPE_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from drainpipe.ingest import _scan
    except ImportError:
        return None
    return _scan


scan = _load()
