"""Process memory: hand the heap that a busy process's threads freed back to the OS.

The threads of a busy process (rollup, sink, its writer, the log) each fill and free
their own malloc arena, and glibc keeps what they free; `malloc_trim` after each upkeep
pass returns it, and much of what settling an hour took (BENCHMARKS.md, "Figures
behind the design").
"""

from __future__ import annotations

import contextlib
import ctypes


def return_freed_memory() -> None:
    """glibc's malloc_trim(0); nothing where the C library is not glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
