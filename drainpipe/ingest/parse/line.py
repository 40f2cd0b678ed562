"""Parse one framed syslog message from a drain by dispatching on its app name and procid.

`heroku router` lines are requests; `heroku logplex` lines are Logplex's own events;
other `heroku <dyno>` lines are runtime metrics or dyno lifecycle events; `app api`
lines are platform API events. The app's own output (`app web.1`, ...) carries custom
metrics when it has count#, sample# or measure# fields, and is otherwise None.
"""

from __future__ import annotations

from drainpipe.ingest.parse.custom import parse_custom
from drainpipe.ingest.parse.events import EventParts, read_event
from drainpipe.ingest.parse.router import parse_router
from drainpipe.ingest.parse.runtime import parse_runtime
from drainpipe.ingest.parse.syslog import parse_header
from drainpipe.model import PlatformEvent, Record, Skipped


# <158>1 2026-11-21T10:00:00.123456+00:00 host heroku router - at=info method=GET path="/" ...
def read_message(msg: bytes) -> Record | EventParts | Skipped | None:
    """What parse_message returns, a platform event as the tuple of its fields."""
    header = parse_header(msg)
    if isinstance(header, Skipped):
        return header
    return read_text(*header)


def read_text(
    ts_ms: int, appname: str, procid: str, text: str
) -> Record | EventParts | Skipped | None:
    """What read_message returns for a message with this header and text."""
    if appname == "heroku":
        if procid == "router":
            return parse_router(ts_ms, text)
        if procid == "logplex":
            return read_event(ts_ms, appname, procid, text)
        sample = parse_runtime(ts_ms, procid, text)
        if sample is not None:
            return sample
        return read_event(ts_ms, appname, procid, text)
    if appname == "app" and procid == "api":
        return read_event(ts_ms, appname, procid, text)
    return parse_custom(ts_ms, procid, text)


def parse_message(msg: bytes) -> Record | Skipped | None:
    """The record one message carries, why it was skipped, or None when it carries none."""
    found = read_message(msg)
    return PlatformEvent(*found) if isinstance(found, tuple) else found
