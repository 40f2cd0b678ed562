"""Rows dropped as late, counted per app, process type and minute for the app to see.

A drop is counted in the oldest minute its key still accepts: the later of its key's
bound (lateness behind the key's newest time) and its partition's. A forgotten key's
watermark was behind the partition's bound, so the minute does not depend on what the
rollup forgot, and it is open, so its count only grows. `flush_late` emits the changed
counts as the reserved count# metric `model.late_name(family)`, and forgets a minute
once it closes; open counts travel in the commit metadata (`position`), so a restart
adds to them and each count is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from drainpipe.model import MINUTE_MS, Stat, Summary, late_name
from drainpipe.rollup.position import Key, LateKey
from drainpipe.rollup.state import PartitionState


def late_summary(key: LateKey, dropped: int) -> Summary:
    """Rows of a family dropped as late in one minute, as that minute's count# summary of
    the reserved custom metric `late_name(family)` (each drop counts 1)."""
    owner, process_type, family, minute = key
    n = float(dropped)
    return Summary(
        owner,
        process_type,
        "custom." + late_name(family),
        MINUTE_MS // 1000,
        minute,
        dropped,
        {"count": Stat(dropped, n, n, 1.0, 1.0)},
    )


def count_late(
    entries: npt.NDArray[np.int64],
    minutes: npt.NDArray[np.int64],
    where: Callable[[int], tuple[PartitionState, str, str]],
    family: str,
) -> None:
    """Count drops: row i of message entry `entries[i]`, in minute `minutes[i]`;
    `where(entry)` is the entry's partition state, owner and process type."""
    pairs, counts = np.unique(np.stack([entries, minutes]), axis=1, return_counts=True)
    for (e, minute), n in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        st, owner, process_type = where(e)
        key = (owner, process_type, family, minute)
        st.late[key] = st.late.get(key, 0) + n
        st.late_dirty.add(key)


def flush_late(
    st: PartitionState,
    horizon: int | None,
    key_watermarks: Mapping[Key, int],
    floor: int | None,
    period_ms: int,
    lateness_ms: int,
) -> list[Summary]:
    """The counts changed since the last flush; minutes behind either bound are forgotten."""
    out = [late_summary(k, st.late[k]) for k in sorted(st.late_dirty)]
    st.late_dirty.clear()
    for key in list(st.late):
        wm = key_watermarks.get((key[0], key[1]), floor)
        if (horizon is not None and key[3] < horizon) or (
            wm is not None and key[3] < wm - wm % period_ms - lateness_ms
        ):
            del st.late[key]
    return out
