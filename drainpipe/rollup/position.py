"""The rollup's commit metadata: the watermarks a restart needs to judge rows as before.

Stored with each committed offset (see `window.RollupCore.positions`): the partition's
watermark, the offset read up to when it was committed (rows before it were judged, and
their drops counted, already), the key floor left by an older release, and the
watermarks of the keys whose own bound is tighter than the partition's, and the late-drop
counts of minutes still open (see `window`: a restart adds to them, so each is exact).
Plain text with the lists as JSON at the end, since owners and process types are text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import NamedTuple

Key = tuple[str, str]  # owner, process type
LateKey = tuple[str, str, str, int]  # owner, process type, family, minute


def encode_watermark(
    watermark_ms: int | None,
    read_until: int | None = None,
    keys: Mapping[Key, int] | None = None,
    key_floor: int | None = None,
    late: Mapping[LateKey, int] | None = None,
) -> str:
    """Commit metadata: the partition's watermark, the next offset read when it was
    committed, the key floor if any, and the key watermarks (JSON, last: owners and
    process types are text). Without keys it is the form of older releases."""
    if watermark_ms is None:
        return ""
    out = f"wm={watermark_ms}" + ("" if read_until is None else f";next={read_until}")
    if key_floor is not None:
        out += f";floor={key_floor}"
    if late:
        out += ";late=" + json.dumps(
            [[o, p, f, m, n] for (o, p, f, m), n in sorted(late.items())], separators=(",", ":")
        )
    if keys is not None:  # always written: metadata without it is an older release's
        out += ";keys=" + json.dumps(
            [[o, p, w] for (o, p), w in sorted(keys.items())], separators=(",", ":")
        )
    return out


class Decoded(NamedTuple):
    watermark: int | None
    read_until: int
    keys: dict[Key, int]
    key_floor: int | None
    late: dict[LateKey, int]


def decode_position(metadata: str) -> Decoded:
    """The watermarks, the offset read up to and the open late-drop counts from commit
    metadata. "wm=<ms>" alone and "wm=<ms>;next=<offset>" (older releases, which judged
    lateness per partition) make the watermark every key's floor."""
    if not metadata:
        return Decoded(None, 0, {}, None, {})
    head, marker, keys = metadata.partition(";keys=")
    head, _, late_json = head.partition(";late=")
    fields = dict(part.partition("=")[::2] for part in head.split(";"))
    try:
        wm = int(fields["wm"])
        if not marker:
            return Decoded(wm, int(fields.get("next", 0)), {}, wm, {})
        by_key = {(str(o), str(p)): int(w) for o, p, w in json.loads(keys)}
        floor = int(fields["floor"]) if "floor" in fields else None
        late = {
            (str(o), str(p), str(f), int(m)): int(n)
            for o, p, f, m, n in (json.loads(late_json) if late_json else ())
        }
        return Decoded(wm, int(fields.get("next", 0)), by_key, floor, late)
    except (KeyError, ValueError, TypeError):
        raise ValueError(
            f"commit metadata {metadata[:200]!r} is not a rollup position "
            "('wm=<ms>;next=<offset>;keys=[[owner, process type, ms], ...]')"
        ) from None


def decode_watermark(metadata: str) -> int | None:
    return decode_position(metadata).watermark
