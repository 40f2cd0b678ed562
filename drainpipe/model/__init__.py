"""Shared types that flow between stages: parsed lines, bus messages, summaries, keys.

Every other module imports its vocabulary from here, so the stages agree on one meaning
for each field.
"""

from __future__ import annotations

from drainpipe.model.messages import (
    CUSTOM as CUSTOM,
)
from drainpipe.model.messages import (
    EVENTS_TOPIC as EVENTS_TOPIC,
)
from drainpipe.model.messages import (
    FRAMES_TOPIC as FRAMES_TOPIC,
)
from drainpipe.model.messages import (
    LOAD as LOAD,
)
from drainpipe.model.messages import (
    MEMORY as MEMORY,
)
from drainpipe.model.messages import (
    ROUTER as ROUTER,
)
from drainpipe.model.messages import (
    SCHEMA_BY_FAMILY as SCHEMA_BY_FAMILY,
)
from drainpipe.model.messages import (
    SCHEMA_BY_TOPIC as SCHEMA_BY_TOPIC,
)
from drainpipe.model.messages import (
    SCHEMAS as SCHEMAS,
)
from drainpipe.model.messages import (
    SEP as SEP,
)
from drainpipe.model.messages import (
    SUMMARY_TOPICS as SUMMARY_TOPICS,
)
from drainpipe.model.messages import (
    Column as Column,
)
from drainpipe.model.messages import (
    EventBatch as EventBatch,
)
from drainpipe.model.messages import (
    EventRecord as EventRecord,
)
from drainpipe.model.messages import (
    FloatArray as FloatArray,
)
from drainpipe.model.messages import (
    IntArray as IntArray,
)
from drainpipe.model.messages import (
    RawBatch as RawBatch,
)
from drainpipe.model.messages import (
    Schema as Schema,
)
from drainpipe.model.messages import (
    partition_for as partition_for,
)
from drainpipe.model.messages import (
    partition_key as partition_key,
)
from drainpipe.model.messages import (
    retry_topic as retry_topic,
)
from drainpipe.model.messages import (
    schema_of_family as schema_of_family,
)
from drainpipe.model.messages import (
    summary_key as summary_key,
)
from drainpipe.model.records import (
    CUSTOM_KINDS as CUSTOM_KINDS,
)
from drainpipe.model.records import (
    EVENT_KINDS as EVENT_KINDS,
)
from drainpipe.model.records import (
    LATE_PREFIX as LATE_PREFIX,
)
from drainpipe.model.records import (
    RESERVED_MARK as RESERVED_MARK,
)
from drainpipe.model.records import (
    SKIP_REASONS as SKIP_REASONS,
)
from drainpipe.model.records import (
    SKIPPED_PREFIX as SKIPPED_PREFIX,
)
from drainpipe.model.records import (
    CustomMetrics as CustomMetrics,
)
from drainpipe.model.records import (
    DynoLoad as DynoLoad,
)
from drainpipe.model.records import (
    DynoMemory as DynoMemory,
)
from drainpipe.model.records import (
    PlatformEvent as PlatformEvent,
)
from drainpipe.model.records import (
    Record as Record,
)
from drainpipe.model.records import (
    RouterRequest as RouterRequest,
)
from drainpipe.model.records import (
    Skipped as Skipped,
)
from drainpipe.model.records import (
    late_name as late_name,
)
from drainpipe.model.records import (
    skipped_name as skipped_name,
)
from drainpipe.model.summary import (
    MINUTE_MS as MINUTE_MS,
)
from drainpipe.model.summary import (
    Stat as Stat,
)
from drainpipe.model.summary import (
    Summary as Summary,
)
from drainpipe.model.summary import (
    iso as iso,
)
from drainpipe.model.summary import (
    parse_iso as parse_iso,
)
