"""Platform events: dyno lifecycle, R errors, API changes and Logplex drops."""

from __future__ import annotations

import pytest

from drainpipe.ingest.parse import parse_event
from drainpipe.model import EVENT_KINDS, PlatformEvent, Skipped

T = 1_795_255_200_000
USER = "a@example.com"


@pytest.mark.parametrize(
    ("appname", "procid", "text", "process_type", "kind", "attrs"),
    [
        # a dyno coming up
        (
            "heroku",
            "web.1",
            "State changed from starting to up",
            "web",
            "state",
            {"from": "starting", "to": "up"},
        ),
        # a dyno going down
        (
            "heroku",
            "worker.2",
            "State changed from up to down",
            "worker",
            "state",
            {"from": "up", "to": "down"},
        ),
        # a crash is its own kind
        (
            "heroku",
            "web.1",
            "State changed from up to crashed",
            "web",
            "crash",
            {"from": "up", "to": "crashed"},
        ),
        # a one-off dyno completing: the process type is "run"
        (
            "heroku",
            "run.1234",
            "State changed from up to complete",
            "run",
            "state",
            {"from": "up", "to": "complete"},
        ),
        # the start command, without its backticks
        (
            "heroku",
            "web.1",
            "Starting process with command `bundle exec puma -C config/puma.rb`",
            "web",
            "start",
            {"command": "bundle exec puma -C config/puma.rb"},
        ),
        # a one-off dyno's start names the user who ran it
        (
            "heroku",
            "run.1234",
            f"Starting process with command `bash` by user {USER}",
            "run",
            "start",
            {"command": "bash", "user": USER},
        ),
        # a command not in backticks is the rest of the line
        (
            "heroku",
            "web.1",
            "Starting process with command node server.js",
            "web",
            "start",
            {"command": "node server.js"},
        ),
        # SIGTERM to all processes
        (
            "heroku",
            "web.1",
            "Stopping all processes with SIGTERM",
            "web",
            "stop",
            {"signal": "SIGTERM"},
        ),
        # SIGKILL to what is left after the grace period
        (
            "heroku",
            "web.1",
            "Stopping remaining processes with SIGKILL",
            "web",
            "stop",
            {"signal": "SIGKILL"},
        ),
        # the exit status
        ("heroku", "web.1", "Process exited with status 137", "web", "exit", {"status": "137"}),
        # restart and cycle carry no attributes
        ("heroku", "web.1", "Restarting", "web", "restart", {}),
        ("heroku", "web.1", "Cycling", "web", "cycle", {}),
        # memory quota exceeded
        (
            "heroku",
            "web.1",
            "Error R14 (Memory quota exceeded)",
            "web",
            "error",
            {"code": "R14", "desc": "Memory quota exceeded"},
        ),
        # memory quota vastly exceeded
        (
            "heroku",
            "worker.1",
            "Error R15 (Memory quota vastly exceeded)",
            "worker",
            "error",
            {"code": "R15", "desc": "Memory quota vastly exceeded"},
        ),
        # boot timeout, with the detail after the arrow
        (
            "heroku",
            "web.1",
            "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 60 "
            "seconds of launch",
            "web",
            "error",
            {
                "code": "R10",
                "desc": "Boot timeout",
                "detail": "Web process failed to bind to $PORT within 60 seconds of launch",
            },
        ),
        # exit timeout
        (
            "heroku",
            "web.1",
            "Error R12 (Exit timeout) -> At least one process failed to exit "
            "within 30 seconds of SIGTERM",
            "web",
            "error",
            {
                "code": "R12",
                "desc": "Exit timeout",
                "detail": "At least one process failed to exit within 30 seconds of SIGTERM",
            },
        ),
        # a release; the version is kept without its v
        (
            "app",
            "api",
            f"Release v16 created by user {USER}",
            "",
            "release",
            {"version": "16", "user": USER},
        ),
        # a deploy of a commit
        (
            "app",
            "api",
            f"Deploy 059375fe by user {USER}",
            "",
            "deploy",
            {"commit": "059375fe", "user": USER},
        ),
        # a rollback
        (
            "app",
            "api",
            f"Rollback to v11 by user {USER}",
            "",
            "rollback",
            {"version": "11", "user": USER},
        ),
        # config vars set, the list joined by commas
        (
            "app",
            "api",
            f"Set FOO, BAR config vars by user {USER}",
            "",
            "config",
            {"action": "set", "vars": "FOO,BAR", "user": USER},
        ),
        # a config var removed
        (
            "app",
            "api",
            f"Remove FOO config vars by user {USER}",
            "",
            "config",
            {"action": "remove", "vars": "FOO", "user": USER},
        ),
        # scaling, the whole formation kept
        (
            "app",
            "api",
            f"Scaled to web@2:Standard-1X worker@1:Standard-1X by user {USER}",
            "",
            "scale",
            {"formation": "web@2:Standard-1X worker@1:Standard-1X", "user": USER},
        ),
        # build started, by a user
        (
            "app",
            "api",
            f"Build started by user {USER}",
            "",
            "build",
            {"status": "started", "user": USER},
        ),
        # build succeeded and failed name no user
        ("app", "api", "Build succeeded", "", "build", {"status": "succeeded"}),
        ("app", "api", "Build failed", "", "build", {"status": "failed"}),
        # Logplex's own drop report
        (
            "heroku",
            "logplex",
            "Error L10 (output buffer overflow): 54 messages dropped since "
            "2026-11-21T10:00:00+00:00.",
            "",
            "logplex_drop",
            {"dropped": "54", "since": "2026-11-21T10:00:00+00:00"},
        ),
        # the newer wording, which names the drain
        (
            "heroku",
            "logplex",
            "Error L10 (output buffer overflow): drain 'd.2b9a7c6e-1f0d-4e3b-9a8c-5d4e3f2a1b0c' "
            "dropped 11 messages since 2026-11-21T10:00:00+00:00.",
            "",
            "logplex_drop",
            {
                "dropped": "11",
                "drain": "d.2b9a7c6e-1f0d-4e3b-9a8c-5d4e3f2a1b0c",
                "since": "2026-11-21T10:00:00+00:00",
            },
        ),
        # a drop report with a fractional since time and no final dot
        (
            "heroku",
            "logplex",
            "Error L10 (output buffer overflow): 1 message dropped since "
            "2026-11-21T10:00:00.123456+00:00",
            "",
            "logplex_drop",
            {"dropped": "1", "since": "2026-11-21T10:00:00.123456+00:00"},
        ),
        # case-insensitive matching, with values normalised
        (
            "heroku",
            "web.1",
            "state changed from STARTING to UP",
            "web",
            "state",
            {"from": "starting", "to": "up"},
        ),
        (
            "heroku",
            "web.1",
            "stopping all processes with sigterm",
            "web",
            "stop",
            {"signal": "SIGTERM"},
        ),
        # surrounding whitespace and extra trailing text are tolerated
        (
            "heroku",
            "web.1",
            "  Process exited with status 0 (clean)\n",
            "web",
            "exit",
            {"status": "0"},
        ),
        ("heroku", "web.1", "Restarting dynos", "web", "restart", {}),
        (
            "app",
            "api",
            f"Release v17 created by user {USER} (rollback)",
            "",
            "release",
            {"version": "17", "user": USER},
        ),
        # an upper-case dyno name gives a lowercase process type
        ("heroku", "Web.1", "Cycling", "web", "cycle", {}),
    ],
)
def test_parse_event_reads_platform_events(
    appname: str, procid: str, text: str, process_type: str, kind: str, attrs: dict[str, str]
) -> None:
    assert kind in EVENT_KINDS
    assert parse_event(T, appname, procid, text) == PlatformEvent(
        ts_ms=T, process_type=process_type, source=procid, kind=kind, text=text, attrs=attrs
    )


@pytest.mark.parametrize(
    ("appname", "procid", "text"),
    [
        # an empty line
        ("heroku", "web.1", ""),
        # the memory report that precedes an R14
        ("heroku", "web.1", "Process running mem=1028M(100.6%)"),
        # an API action this reader does not know
        ("app", "api", f"Attach DATABASE (@ref:postgresql-1) by user {USER}"),
        # a build status it does not know
        ("app", "api", "Build queued"),
        # words that merely begin like an event
        ("heroku", "web.1", "Restarting_soon is not a word"),
        ("app", "api", "Settings changed"),
        # an error without the code-and-description form
        ("heroku", "web.1", "Error: something else"),
    ],
)
def test_parse_event_returns_none_for_text_that_is_no_event(
    appname: str, procid: str, text: str
) -> None:
    assert parse_event(T, appname, procid, text) is None


@pytest.mark.parametrize(
    ("appname", "procid", "text"),
    [
        # a state change cut short
        ("heroku", "web.1", "State changed from starting"),
        # an exit without its status
        ("heroku", "web.1", "Process exited with status"),
        # an L10 report without a count
        ("heroku", "logplex", "Error L10 (output buffer overflow): many messages dropped"),
        # a release without a version
        ("app", "api", "Release vX created by user a@example.com"),
        # a scale without a formation
        ("app", "api", "Scaled to nothing"),
        # a dyno name whose process type is not [a-z0-9_-]
        ("heroku", "we b!.1", "Restarting"),
    ],
)
def test_parse_event_skips_lines_that_start_like_an_event_but_cannot_be_read(
    appname: str, procid: str, text: str
) -> None:
    assert parse_event(T, appname, procid, text) == Skipped("event_line")
