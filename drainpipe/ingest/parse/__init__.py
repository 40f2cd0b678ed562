"""Turn the syslog messages of a Logplex drain body into typed records, purely."""

from drainpipe.ingest.parse.bulkrouter import RouterColumns, read_router
from drainpipe.ingest.parse.events import parse_event
from drainpipe.ingest.parse.line import parse_message
from drainpipe.ingest.parse.logfmt import parse_logfmt
from drainpipe.ingest.parse.router import parse_router
from drainpipe.ingest.parse.runtime import parse_runtime
from drainpipe.ingest.parse.syslog import parse_header

__all__ = [
    "RouterColumns",
    "parse_event",
    "parse_header",
    "parse_logfmt",
    "parse_message",
    "parse_router",
    "parse_runtime",
    "read_router",
]
