"""Turn the syslog messages of a Logplex drain body into typed records, purely."""

from drainpipe.parse.bulk import RouterColumns, read_router
from drainpipe.parse.events import parse_event
from drainpipe.parse.line import parse_message
from drainpipe.parse.logfmt import parse_logfmt
from drainpipe.parse.router import parse_router
from drainpipe.parse.runtime import parse_runtime
from drainpipe.parse.syslog import parse_header

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
