"""What the Kafka bus's clients need of it, as a protocol: clients depend on this, not on
`KafkaBus`, which makes them, so no module of the package imports one that imports it."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Protocol

# (physical topic, partition, key, value) as handed to librdkafka.
Item = tuple[str, int, bytes, bytes | None]


class Sender(Protocol):
    def send_items(self, items: Sequence[Item]) -> Future[None]: ...


class Cluster(Protocol):
    """One Kafka cluster's settings and names (see `bus.KafkaBus`)."""

    config: dict[str, Any]  # what every client takes (admin clients take only this)
    consumer_config: dict[str, Any]
    producer_config: dict[str, Any]
    partitions: int
    timeout_s: float
    compression: str
    instance_id: str | None  # this process's group.instance.id, the same in every group

    def topic(self, name: str) -> str: ...

    def logical(self, topic: str) -> str: ...

    def group_id(self, group: str) -> str: ...

    def positions_partition(self, group: str) -> int: ...

    def pipe(self) -> Sender:
        """The bus's one shared producer."""
        ...

    def forget(self, client: object) -> None:
        """A client closed by its owner is no longer the bus's to close."""
        ...
