"""What the rollup holds per partition: its minute windows and its watermarks."""

from __future__ import annotations

from dataclasses import dataclass, field

from drainpipe import codec
from drainpipe.model import Summary
from drainpipe.rollup.position import Key, LateKey

WindowKey = tuple[str, str, str, int]  # owner, process type, family, start_ms


@dataclass(slots=True)
class Window:
    summary: Summary | None  # None while frozen
    first_offset: int  # of the first message that added a kept row
    dirty: bool = True
    # A window whose minute has passed only changes if a late row comes, so after it is
    # flushed it is kept encoded (about a fifth of the memory) until one does.
    frozen: bytes = b""

    def thawed(self) -> Summary:
        if self.summary is None:
            self.summary = codec.decode_summary(self.frozen)
            self.frozen = b""
        return self.summary


@dataclass(slots=True)
class PartitionState:
    next_offset: int = 0
    watermark_ms: int | None = None
    # Per key; a key is forgotten once the partition's bound is the tighter (`flush`).
    key_watermarks: dict[Key, int] = field(default_factory=dict)
    # Restored from a release that judged lateness per partition: every key not seen
    # since has this watermark (the partition's then), so replay closes what it closed.
    key_floor: int | None = None
    windows: dict[WindowKey, Window] = field(default_factory=dict)
    # Offsets below this were read before the last restart; their drops were counted then.
    counted_until: int = 0
    # Rows dropped as late, by (owner, process type, family, minute), while the minute is
    # open; `late_dirty` holds those changed since the last flush.
    late: dict[LateKey, int] = field(default_factory=dict)
    late_dirty: set[LateKey] = field(default_factory=set)
