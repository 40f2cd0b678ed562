"""Which batches of retried drain frames a rollup partition has already counted (pure).

Logplex resends a frame it got no answer for with the same Logplex-Frame-Id, and the
retry may reach another ingress process than the first copy did, which does not know the
frame. Ingress stamps the frame id on every raw batch, so the rollup, the one reader of
a partition, drops a batch whose (topic, owner, process type, series, frame) it already
read at another offset. One request makes at most one batch per such key, so a key
never repeats but by a retry. A key is forgotten once its rows are too old to count
(every row of a second copy would be dropped as late anyway); after a restart the
rollup reads again from its oldest open minute, which brings back every key whose rows
could still count.
"""

from __future__ import annotations

from drainpipe.bus import TopicPartition

FrameKey = tuple[str, str, str, str, str]  # topic, owner, process type, series, frame id


class Frames:
    def __init__(self) -> None:
        # Per partition: key -> (offset of the first copy, newest row time in it).
        self._seen: dict[TopicPartition, dict[FrameKey, tuple[int, int]]] = {}

    def repeated(self, tp: TopicPartition, offset: int, key: FrameKey, newest_ms: int) -> bool:
        """Whether the batch at `offset` repeats one read before at another offset."""
        seen = self._seen.setdefault(tp, {})
        first = seen.get(key)
        if first is not None and first[0] != offset:
            return True
        seen[key] = (offset, newest_ms)
        return False

    def forget_before(self, tp: TopicPartition, floor_ms: int) -> None:
        """Forget keys whose rows are all older than floor_ms."""
        seen = self._seen.get(tp)
        if seen:
            for key in [k for k, (_, newest) in seen.items() if newest < floor_ms]:
                del seen[key]

    def revoke(self, tp: TopicPartition) -> None:
        self._seen.pop(tp, None)

    def __len__(self) -> int:
        return sum(len(s) for s in self._seen.values())
