"""Recognise platform events (dyno lifecycle, API changes, Logplex drops) in a line's text.

Patterns are matched case-insensitively at the start of the text, so trailing text is
tolerated. A line that begins with the distinctive phrase of an event but cannot be
read further is Skipped("event_line"); any other text is no event (None). Attribute
values are normalised: states and statuses lowercased, signals and error codes
uppercased, release versions without their `v`, config var lists joined by commas.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from drainpipe.ingest.parse.dyno import process_type
from drainpipe.model import PlatformEvent, Skipped

SKIP_EVENT: Final = Skipped("event_line")

_BY: Final = r"(?:\s+by\s+(?:user\s+)?(?P<user>\S+))?"  # "by user a@example.com"
_Normalise = Callable[[dict[str, str]], tuple[str, dict[str, str]]]


def _same(kind: str) -> _Normalise:
    return lambda attrs: (kind, attrs)


def _state(attrs: dict[str, str]) -> tuple[str, dict[str, str]]:
    attrs = {"from": attrs["from"].lower(), "to": attrs["to"].lower()}
    return ("crash" if attrs["to"] == "crashed" else "state"), attrs


def _start(attrs: dict[str, str]) -> tuple[str, dict[str, str]]:
    if "bare" in attrs:  # the command was not in backticks: it is the rest of the line
        attrs["command"] = attrs.pop("bare")
    return "start", attrs


def _stop(attrs: dict[str, str]) -> tuple[str, dict[str, str]]:
    return "stop", {"signal": attrs["signal"].upper()}


def _error(attrs: dict[str, str]) -> tuple[str, dict[str, str]]:
    attrs["code"] = attrs["code"].upper()
    return "error", attrs


def _config(attrs: dict[str, str]) -> tuple[str, dict[str, str]]:
    action = attrs["action"].lower()
    attrs["action"] = "set" if action == "set" else "remove"
    attrs["vars"] = ",".join(v.strip() for v in attrs["vars"].split(",") if v.strip())
    return "config", attrs


def _l10(attrs: dict[str, str]) -> tuple[str, dict[str, str]]:
    if "drain_dropped" in attrs:  # the wording that names the drain
        attrs["dropped"] = attrs.pop("drain_dropped")
    return "logplex_drop", attrs


def _build(attrs: dict[str, str]) -> tuple[str, dict[str, str]]:
    attrs["status"] = attrs["status"].lower()
    return "build", attrs


# (opening phrases, whether they claim the line, pattern, normaliser). The pattern is
# tried when the lowercased text starts with one of the phrases; a claiming phrase whose
# pattern then fails makes the line Skipped instead of "no event".
_Rule = tuple[tuple[str, ...], bool, re.Pattern[str], _Normalise]
_RULES: Final[tuple[_Rule, ...]] = tuple(
    (phrases, claims, re.compile(pattern, re.IGNORECASE | re.DOTALL), normalise)
    for phrases, claims, pattern, normalise in (
        # State changed from up to crashed
        (
            ("state changed ",),
            True,
            r"State changed from (?P<from>\w+) to (?P<to>\w+)",
            _state,
        ),
        # Starting process with command `bundle exec puma -C config/puma.rb`
        (
            ("starting process ",),
            True,
            r"Starting process with command (?:`(?P<command>[^`]*)`" + _BY + r"|(?P<bare>.*\S))",
            _start,
        ),
        # Stopping all processes with SIGTERM / Stopping remaining processes with SIGKILL
        (
            ("stopping ",),
            False,
            r"Stopping (?:all |remaining )?process(?:es)? with (?P<signal>SIG[A-Z0-9]+)",
            _stop,
        ),
        # Process exited with status 137
        (
            ("process exited ",),
            True,
            r"Process exited with status (?P<status>-?[0-9]+)",
            _same("exit"),
        ),
        # Restarting
        (("restarting ",), False, r"Restarting\b", _same("restart")),
        # Cycling
        (("cycling ",), False, r"Cycling\b", _same("cycle")),
        # Error L10 (output buffer overflow): 54 messages dropped since 2026-11-21T10:00:00+00:00.
        # Error L10 (output buffer overflow): drain 'd.8b1c…' dropped 11 messages since 2026-…
        (
            ("error l10 ",),
            True,
            r"Error L10 \([^)]*\):?\s*(?:(?P<dropped>[0-9]+) messages? dropped"
            r"|drain '(?P<drain>[^']*)' dropped (?P<drain_dropped>[0-9]+) messages?)"
            r"(?: since (?P<since>\S+?)\.?(?=\s|$))?",
            _l10,
        ),
        # Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 60 seconds
        (
            ("error ",),
            False,
            r"Error (?P<code>[A-Z][0-9]+) \((?P<desc>[^)]*)\)(?:\s*->\s*(?P<detail>.*\S))?",
            _error,
        ),
        # Release v16 created by user a@example.com
        (
            ("release v",),
            True,
            r"Release v?(?P<version>[0-9]+) created" + _BY,
            _same("release"),
        ),
        # Deploy 059375fe by user a@example.com
        (("deploy ",), False, r"Deploy (?!by\b)(?P<commit>\S+)" + _BY, _same("deploy")),
        # Rollback to v11 by user a@example.com
        (
            ("rollback to ",),
            True,
            r"Rollback to v?(?P<version>[0-9]+)" + _BY,
            _same("rollback"),
        ),
        # Set FOO, BAR config vars by user a@example.com / Remove FOO config vars by ...
        (
            ("set ", "remove ", "unset "),
            False,
            r"(?P<action>Set|Remove|Unset) (?P<vars>.+?) config vars?\b" + _BY,
            _config,
        ),
        # Scaled to web@2:Standard-1X worker@1:Standard-1X by user a@example.com
        (
            ("scaled to ",),
            True,
            r"Scaled to (?P<formation>\S+@\S+(?: \S+@\S+)*)" + _BY,
            _same("scale"),
        ),
        # Build started by user a@example.com / Build succeeded / Build failed
        (("build ",), False, r"Build (?P<status>started|succeeded|failed)\b" + _BY, _build),
    )
)
_OPENING: Final = max(len(phrase) for rule in _RULES for phrase in rule[0])


# The rules by the first word of their phrases, in rule order: an opening can only start
# with a phrase whose first word is its own first word, so only these rules need a look.
_BY_WORD: Final[dict[str, tuple[_Rule, ...]]] = {
    word: tuple(rule for rule in _RULES if any(p.split(" ")[0] == word for p in rule[0]))
    for word in {phrase.split(" ")[0] for rule in _RULES for phrase in rule[0]}
}
# (ts_ms, process type, source, kind, text, attrs): a PlatformEvent's fields, in order
EventParts = tuple[int, str, str, str, str, dict[str, str]]


_CACHE_LIMIT: Final = 4096
# (app-wide source, procid, text) -> what _read makes of them: a dyno's lifecycle lines
# ("Stopping all processes with SIGTERM", ...) repeat across dynos and restarts.
_Read = tuple[str, str, dict[str, str]] | Skipped | None
_cache: dict[tuple[bool, str, str], _Read] = {}
_MISSING: Final = Skipped("not cached")  # compared by identity, never returned


def _read(app_wide: bool, procid: str, text: str) -> _Read:
    """(process type, kind, attrs) of the event `text` reports, Skipped, or None."""
    body = text.strip()
    opening = body[:_OPENING].lower() + " "  # the space lets "Restarting" match "restarting "
    for phrases, claims, pattern, normalise in _BY_WORD.get(opening[: opening.index(" ")], ()):
        if not opening.startswith(phrases):
            continue
        found = pattern.match(body)
        if found is None:
            if claims:
                return SKIP_EVENT
            continue
        attrs = {k: v for k, v in found.groupdict().items() if v is not None}
        kind, attrs = normalise(attrs)
        if "." in procid and not app_wide:
            kind_of_dyno = process_type(procid)
            if kind_of_dyno is None:
                return SKIP_EVENT
        else:
            kind_of_dyno = ""  # api, logplex and other app-wide sources
        return kind_of_dyno, kind, attrs
    return None


# heroku web.1: State changed from starting to up
# app api: Release v16 created by user a@example.com
def read_event(ts_ms: int, appname: str, procid: str, text: str) -> EventParts | Skipped | None:
    """What parse_event returns, an event as the tuple of its fields (cheaper to make
    than a frozen dataclass, for batch.build)."""
    key = (appname == "app", procid, text)
    found = _cache.get(key, _MISSING)  # not try/except: a raised KeyError costs ~1 µs
    if found is _MISSING:
        found = _read(*key)
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[key] = found
    if isinstance(found, tuple):
        kind_of_dyno, kind, attrs = found
        return ts_ms, kind_of_dyno, procid, kind, text, dict(attrs)  # each event its own
    return found


def parse_event(ts_ms: int, appname: str, procid: str, text: str) -> PlatformEvent | Skipped | None:
    """The platform event `text` reports, Skipped("event_line"), or None for no event."""
    found = read_event(ts_ms, appname, procid, text)
    return PlatformEvent(*found) if isinstance(found, tuple) else found
