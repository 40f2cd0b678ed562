"""parse_event equals a scan of every rule, on generated lines."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drainpipe.ingest.parse import parse_event
from drainpipe.ingest.parse.dyno import process_type
from drainpipe.ingest.parse.events import _OPENING, _RULES, SKIP_EVENT
from drainpipe.model import PlatformEvent, Skipped
from tests.ingest.parse.test_events import T


def scan_every_rule(appname: str, procid: str, text: str) -> PlatformEvent | Skipped | None:
    """parse_event as first written: every rule tried in order, none passed over early."""
    body = text.strip()
    opening = body[:_OPENING].lower() + " "
    for phrases, claims, pattern, normalise in _RULES:
        if not opening.startswith(phrases):
            continue
        found = pattern.match(body)
        if found is None:
            if claims:
                return SKIP_EVENT
            continue
        kind, attrs = normalise({k: v for k, v in found.groupdict().items() if v is not None})
        kind_of_dyno = process_type(procid) if "." in procid and appname != "app" else ""
        if kind_of_dyno is None:
            return SKIP_EVENT
        return PlatformEvent(T, kind_of_dyno, procid, kind, text, attrs)
    return None


# Openings of every rule and of none, in any case, with and without what follows them.
OPENINGS = [phrase for rule in _RULES for phrase in rule[0]] + [
    "State changed from up to crashed",
    "Starting process with command `x` by user a@b.c",
    "Stopping all processes with SIGTERM",
    "Error L10 (output buffer overflow): 5 messages dropped since x.",
    "Error R14 (Memory quota exceeded) -> over",
    "Release v16 created",
    "Deploy abc by user a@b.c",
    "Set FOO, BAR config vars",
    "Scaled to web@2:Standard-1X",
    "Build started by user a@b.c",
    "Restarting",
    "Cycling",
    "release",
    "errorx ",
    "stopping",
    " ",
    "",
]


@settings(max_examples=500)
@given(
    opening=st.sampled_from(OPENINGS),
    case=st.sampled_from([str, str.upper, str.lower, str.title]),
    tail=st.text(alphabet=" abcvV0123456789@:.,`()-_>\tİ", max_size=12),
    lead=st.sampled_from(["", "", " ", "\t"]),
    source=st.sampled_from(
        [
            ("heroku", "web.1"),
            ("app", "api"),
            ("heroku", "bad!.1"),
            ("app", "web.1"),
            ("heroku", "api"),
        ]
    ),
)
def test_parse_event_equals_a_scan_of_every_rule(
    opening: str, case: object, tail: str, lead: str, source: tuple[str, str]
) -> None:
    assert callable(case)
    text = lead + case(opening) + tail
    assert parse_event(T, *source, text) == scan_every_rule(*source, text)
