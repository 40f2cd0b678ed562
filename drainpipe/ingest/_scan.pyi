"""Compiled framing and router-line readers (drainpipe/ingest/_scan.c)."""

import numpy as np
import numpy.typing as npt

def split_lines(body: bytes, /) -> list[bytes] | None: ...
def read_router(frames: list[bytes], out: npt.NDArray[np.int64], /) -> list[bytes] | None: ...
