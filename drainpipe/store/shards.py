"""A consistent-hash ring: which PostgreSQL shard holds a series (owner + process type).

Each shard owns `vnodes` points on a 64-bit ring (blake2b of "shard-<i>#<v>"); a series
belongs to the first point at or after the blake2b of its `model.partition_key`. The
hash is stable across processes and Python versions (never `hash()`), so every sink and
API process routes alike. A shard is identified by its position in the DSN list: append
new shards at the end, never reorder, and adding a shard moves only ~1/N of the series
(the ones it takes over), not nearly all of them as `hash % N` would.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable

from drainpipe.model import partition_key

DEFAULT_VNODES = 256
_KNOWN_MAX = 200_000


def _point(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class ShardRing:
    def __init__(self, shards: int, vnodes: int = DEFAULT_VNODES) -> None:
        if shards < 1:
            raise ValueError(f"a ring needs at least one shard, not {shards}")
        if vnodes < 1:
            raise ValueError(f"vnodes must be at least 1, not {vnodes}")
        self.shards = shards
        ring = sorted(
            (_point(f"shard-{shard}#{v}".encode()), shard)
            for shard in range(shards)
            for v in range(vnodes)
        )
        self._points = [p for p, _ in ring]
        self._owners = [s for _, s in ring]
        self._known: dict[bytes, int] = {}

    def shard_for_key(self, key: bytes) -> int:
        shard = self._known.get(key)
        if shard is None:
            i = bisect.bisect_left(self._points, _point(key))
            shard = self._owners[i % len(self._owners)]
            if len(self._known) >= _KNOWN_MAX:  # a sink sees the same series every second
                self._known.clear()
            self._known[key] = shard
        return shard

    def shard_for(self, owner: str, process_type: str) -> int:
        """The shard of a series: its owner and process type, like bus partitions."""
        return self.shard_for_key(partition_key(owner, process_type))

    def spread(self, keys: Iterable[bytes]) -> list[int]:
        """How many of keys each shard gets."""
        counts = [0] * self.shards
        for key in keys:
            counts[self.shard_for_key(key)] += 1
        return counts
