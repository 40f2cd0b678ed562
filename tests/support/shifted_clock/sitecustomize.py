"""Loaded only in the shifted-clock run of `tests/test_clock.py` (on its PYTHONPATH).

libfaketime moves the wall clock and leaves the monotonic one alone there
(FAKETIME_DONT_FAKE_MONOTONIC=1: faked monotonic time makes timed lock waits hang). Its
clock_nanosleep then rejects the absolute monotonic deadline of Python's time.sleep with
EINVAL, so sleeping waits on an event instead: the same pause, through a call it leaves be.
"""

import threading
import time
from typing import SupportsIndex


def _sleep(seconds: float | SupportsIndex) -> None:
    s = float(seconds)
    if s < 0:
        raise ValueError("sleep length must be non-negative")
    threading.Event().wait(s)


time.sleep = _sleep
