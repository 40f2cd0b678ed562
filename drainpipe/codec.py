"""Versioned binary encoding of bus messages: columnar batches, events and summaries.

msgpack via msgspec: typed structs encode and decode in C, and a batch's columns are raw
little-endian numpy buffers, so a 500-row batch costs a few microseconds either way. The
schema version is part of every topic's name (ROUTER_REQUESTS.v1): a new layout is a new
topic, and a consumer never guesses which layout it reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
import numpy as np

from drainpipe import sketch
from drainpipe.model import Column, EventBatch, RawBatch, Schema, Summary


class DecodeError(ValueError):
    pass


_batch_decoder = msgspec.msgpack.Decoder(RawBatch)
_events_decoder = msgspec.msgpack.Decoder(EventBatch)
_summary_decoder = msgspec.msgpack.Decoder(Summary)


class SummaryHead(msgspec.Struct, array_like=True, frozen=True):
    """The key fields of a summary: the leading fields of `Summary`. Array-like structs
    ignore trailing fields, so decoding an encoded summary as this skips its stats and
    sketches."""

    owner: str
    process_type: str
    family: str
    period_s: int
    start_ms: int
    n: int = 0


class EncodedSummary(SummaryHead, frozen=True):
    """A summary's key fields and its encoding (`payload`): what a sink hands the store,
    which keeps the bus value as it is instead of decoding and encoding it again."""

    payload: bytes = b""


_head_decoder = msgspec.msgpack.Decoder(SummaryHead)
_encoder = msgspec.msgpack.Encoder()


def encode_batch(
    schema: Schema,
    owner: str,
    process_type: str,
    columns: Mapping[str, Column],
    series: str = "",
    frame: str = "",
) -> bytes:
    cols = []
    for name, dtype in schema.columns:
        cols.append(np.ascontiguousarray(columns[name], dtype=dtype).tobytes())
    return _encoder.encode(RawBatch(owner, process_type, cols, series, frame))


def decode_batch(schema: Schema, value: bytes) -> tuple[str, str, dict[str, Column]]:
    """(owner, process type, columns) of a raw batch; see `decode_series` for custom metrics."""
    owner, pt, cols, _, _ = decode_series(schema, value)
    return owner, pt, cols


def decode_series(schema: Schema, value: bytes) -> tuple[str, str, dict[str, Column], str, str]:
    """(owner, process type, columns, series, frame id) of a raw batch."""
    try:
        batch = _batch_decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"{schema.topic}: not a batch: {exc}") from exc
    have, full = len(batch.columns), len(schema.columns)
    if not full - schema.appended <= have <= full:
        raise DecodeError(
            f"{schema.topic}: batch has {have} columns, schema has {full}"
            + (f" ({schema.appended} of them appended later)" if schema.appended else "")
        )
    out: dict[str, Column] = {}
    rows = -1
    for (name, dtype), buf in zip(schema.columns, batch.columns, strict=False):
        arr = np.frombuffer(buf, dtype=dtype)
        if rows >= 0 and arr.size != rows:
            raise DecodeError(f"{schema.topic}: column {name} has {arr.size} rows, not {rows}")
        rows = arr.size
        out[name] = arr
    for name, _ in schema.columns[have:]:
        out[name] = np.full(max(rows, 0), np.nan)
    return batch.owner, batch.process_type, out, batch.series, batch.frame


def encode_events(batch: EventBatch) -> bytes:
    return _encoder.encode(batch)


def decode_events(value: bytes) -> EventBatch:
    try:
        return _events_decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"not an event batch: {exc}") from exc


def encode_summary(summary: Summary) -> bytes:
    return encode_summaries([summary])[0]


def encode_summaries(summaries: Sequence[Summary]) -> list[bytes]:
    """The encodings of summaries, their sketches packed (`sketch.pack`) in one pass."""
    names = [(i, name) for i, s in enumerate(summaries) for name in s.sketches]
    if not names:
        return [_encoder.encode(s) for s in summaries]
    packed = iter(sketch.pack([summaries[i].sketches[name] for i, name in names]))
    out = []
    for s in summaries:
        if s.sketches:
            # A copy: the caller's summary may be a rollup window that keeps merging.
            s = msgspec.structs.replace(s, sketches={name: next(packed) for name in s.sketches})
        out.append(_encoder.encode(s))
    return out


def encoded(summary: Summary) -> EncodedSummary:
    """A summary as a sink hands it to the store."""
    return decode_head(encode_summary(summary))


def decode_head(value: bytes) -> EncodedSummary:
    """The key fields of an encoded summary, without decoding its stats and sketches."""
    try:
        h = _head_decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"not a summary: {exc}") from exc
    return EncodedSummary(h.owner, h.process_type, h.family, h.period_s, h.start_ms, h.n, value)


def decode_summary(value: bytes) -> Summary:
    try:
        return _summary_decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"not a summary: {exc}") from exc
