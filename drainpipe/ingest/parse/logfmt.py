"""Read the `key=value` pairs of a logfmt line into a dict, tolerating any malformed text.

Keys are runs of non-space characters other than `=` and `"` (so `sample#memory_total`,
`tls_version` and `x.y-z` are keys). A value is either double-quoted, may then contain
spaces and the escapes `\\"`, `\\\\`, `\\n`, `\\t`, `\\r` (other backslashes are kept as
they are), or runs up to the next whitespace. `key=` gives "", a bare `flag` gives "",
an unterminated quote takes the rest of the line, and a repeated key keeps its last
value. Characters that cannot start a pair (stray `=` or `"`) are passed over.
"""

from __future__ import annotations

import re
from typing import Final

_PAIR: Final = re.compile(
    r'([^\s="]+)'  # key
    r'(?:=(?:"((?:[^"\\]|\\.)*)"'  # quoted value, escapes kept for _unescape
    r'|"((?:[^"\\]|\\.)*\\?)$'  # unterminated quote: the rest of the line
    r"|(\S*)))?",  # bare value up to whitespace, possibly empty
    re.DOTALL,
)
_ESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)
_ESCAPED: Final = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    return _ESCAPED.get(char, match.group(0))


# at=info method=GET path="/search?q=red shoes" host=shop.example.com fwd="1.2.3.4" bytes=
def parse_logfmt(text: str) -> dict[str, str]:
    """The pairs of `text`; values are unquoted and unescaped. Never raises."""
    pairs: dict[str, str] = {}
    for key, quoted, unterminated, bare in _PAIR.findall(text):
        value = quoted or unterminated or bare
        if "\\" in value and not bare:
            value = _ESCAPE.sub(_unescape, value)
        pairs[key] = value
    return pairs
