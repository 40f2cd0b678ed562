"""The logfmt reader: quoting, escapes, empty and bare values, and malformed text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drainpipe.ingest.parse import parse_logfmt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # empty text has no pairs
        ("", {}),
        # plain pairs
        ("at=info status=200", {"at": "info", "status": "200"}),
        # a quoted value with spaces inside
        ('desc="Request timeout" code=H12', {"desc": "Request timeout", "code": "H12"}),
        # an escaped quote and an escaped backslash inside quotes
        (r'path="/a\"b\\c" x=1', {"path": '/a"b\\c', "x": "1"}),
        # \n, \t and \r escapes; an unknown escape is kept as written
        (r'msg="a\nb\tc\rd\qe"', {"msg": "a\nb\tc\rd\\qe"}),
        # an empty value
        ("service= status=503", {"service": "", "status": "503"}),
        # an empty quoted value
        ('fwd="" dyno=web.1', {"fwd": "", "dyno": "web.1"}),
        # a bare key is a flag with an empty value
        ("flag other=1", {"flag": "", "other": "1"}),
        # keys with #, ., - and _ in them
        (
            "sample#memory_total=21.00MB x.y-z=1 count#a_b=2",
            {"sample#memory_total": "21.00MB", "x.y-z": "1", "count#a_b": "2"},
        ),
        # an unquoted value may contain = and ?
        ("path=/search?q=1&r=2 status=200", {"path": "/search?q=1&r=2", "status": "200"}),
        # a quote in the middle of an unquoted value is part of it
        ('x=a"b y=1', {"x": 'a"b', "y": "1"}),
        # an unterminated quote takes the rest of the line
        ('a=1 desc="no end here b=2', {"a": "1", "desc": "no end here b=2"}),
        # an unterminated quote ending in a lone backslash
        ('desc="tail\\', {"desc": "tail\\"}),
        # a repeated key keeps its last value
        ("status=200 status=503", {"status": "503"}),
        # tabs and runs of spaces separate pairs
        ("a=1\t b=2   c=3", {"a": "1", "b": "2", "c": "3"}),
        # stray = and quotes are passed over
        ('= =x "y" a=1', {"x": "", "y": "", "a": "1"}),
        # non-ASCII keys and values
        ("café=crème ☕", {"café": "crème", "☕": ""}),
        # plain prose reads as bare keys, harmlessly
        (
            "State changed from up to down",
            dict.fromkeys(["State", "changed", "from", "up", "to", "down"], ""),
        ),
    ],
)
def test_parse_logfmt_reads_pairs(text: str, expected: dict[str, str]) -> None:
    assert parse_logfmt(text) == expected


@given(st.text())
def test_parse_logfmt_never_raises_on_arbitrary_text(text: str) -> None:
    pairs = parse_logfmt(text)
    assert all(key and "=" not in key for key in pairs)


KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789#._-", min_size=1, max_size=12)


def quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@given(st.dictionaries(KEYS, st.text(alphabet=st.characters(exclude_categories=["Cs"]))))
def test_parse_logfmt_reads_back_any_pairs_written_with_quoting(pairs: dict[str, str]) -> None:
    text = " ".join(f"{key}={quote(value)}" for key, value in pairs.items())
    assert parse_logfmt(text) == pairs
