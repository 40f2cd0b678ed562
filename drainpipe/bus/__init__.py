"""The bus interface: partitioned, durable topics with offsets and committed positions.

Two implementations share it: `embedded.EmbeddedBus` (one fsynced write-ahead log in
the data directory) and `kafka.KafkaBus` (Apache Kafka). Callers never learn which.

Contract:
- `Producer.send` returns a future that completes only when every record is durable
  (fsynced, or acknowledged by all in-sync Kafka replicas); it fails with
  `BusUnavailable` when the bus cannot take the records, and then none may be assumed
  written.
- A record's partition is `model.partition_for(key, partitions)`: owner and process type.
- `Consumer.subscribe` assigns partitions and reports each assigned partition with its
  committed `Position` (offset of the next message to read, and the metadata stored with
  it) before the first message of that partition is returned; consumption resumes there.
- `Consumer.commit` stores positions; committing a position lower than one committed
  before raises `ValueError` (offsets never go backwards).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import NamedTuple, Protocol

TopicPartition = tuple[str, int]


class BusUnavailable(Exception):
    """The bus cannot take records now; the sender should retry later (HTTP 503)."""


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes
    value: bytes


class Message(NamedTuple):
    """One consumed record. A named tuple: consumers build one per record, and a tuple
    costs a third of a frozen dataclass's construction."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Position:
    offset: int  # the next offset to consume
    metadata: str = ""


OnAssign = Callable[[Mapping[TopicPartition, Position]], None]
OnRevoke = Callable[[Sequence[TopicPartition]], None]


class Producer(Protocol):
    partitions: int

    def send(self, records: Sequence[OutRecord]) -> Future[None]: ...

    def close(self) -> None: ...


class Consumer(Protocol):
    def subscribe(
        self, topics: Sequence[str], on_assign: OnAssign, on_revoke: OnRevoke | None = None
    ) -> None: ...

    def poll(self, max_messages: int, timeout_s: float) -> list[Message]:
        """Up to max_messages, none of them of a partition revoked during the poll (the
        member it moved to reads those)."""
        ...

    def rewind(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Read these assigned partitions again from these offsets: the next poll
        returns nothing of them from before, nor anything it had fetched past them."""
        ...

    def commit(self, positions: Mapping[TopicPartition, Position]) -> bool:
        """Store positions; False when the bus asks for them again later (a Kafka group
        in the middle of a rebalance), so the caller keeps them as not yet committed."""
        ...

    @property
    def behind(self) -> bool:
        """True when more is known to wait than the last poll returned (a short poll
        alone does not prove a consumer caught up); False when it cannot tell."""
        ...

    def lag(self) -> int | None:
        """What is left between this member's positions and the ends of its partitions,
        asked of the log (a network round trip on Kafka): 0 exactly when all of it has
        been read, else messages on Kafka and bytes of the shared log on the embedded
        bus; None while nothing is assigned."""
        ...

    def close(self) -> None: ...


class Bus(Protocol):
    """Factory of producers and consumer-group members for one deployment."""

    partitions: int

    def producer(self) -> Producer: ...

    def consumer(self, group: str) -> Consumer: ...

    def close(self) -> None: ...
