"""Kafka errors as the Kafka bus reports them: which are transient, their text, client errors."""

from __future__ import annotations

import logging
from typing import Final

from confluent_kafka import KafkaError, KafkaException

# One logger name for every module of the package.
log = logging.getLogger("drainpipe.bus.kafka")

# Consumer errors librdkafka recovers from by itself: logged, never raised.
_TRANSIENT: Final = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
        KafkaError._MAX_POLL_EXCEEDED,
    }
)


def _error_text(exc: KafkaException) -> str:
    err = exc.args[0] if exc.args else None
    return err.str() if isinstance(err, KafkaError) else str(exc)


def _on_client_error(err: KafkaError) -> None:
    level = logging.ERROR if err.fatal() else logging.WARNING
    log.log(level, "bus.kafka_error", extra={"code": err.code(), "error": err.str()})
