"""The rollup's commit metadata: the watermarks a restart needs to judge rows as before.

Stored with each committed offset (see `window.RollupCore.positions`): the partition's
watermark, the offset read up to when it was committed (rows before it were judged, and
their drops counted, already), the key floor left by an older release, and the
watermarks of the keys whose own bound is tighter than the partition's. Plain text with
the keys as JSON at the end, since owners and process types are text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

Key = tuple[str, str]  # owner, process type


def encode_watermark(
    watermark_ms: int | None,
    read_until: int | None = None,
    keys: Mapping[Key, int] | None = None,
    key_floor: int | None = None,
) -> str:
    """Commit metadata: the partition's watermark, the next offset read when it was
    committed, the key floor if any, and the key watermarks (JSON, last: owners and
    process types are text). Without keys it is the form of older releases."""
    if watermark_ms is None:
        return ""
    out = f"wm={watermark_ms}" + ("" if read_until is None else f";next={read_until}")
    if key_floor is not None:
        out += f";floor={key_floor}"
    if keys is not None:  # always written: metadata without it is an older release's
        out += ";keys=" + json.dumps(
            [[o, p, w] for (o, p), w in sorted(keys.items())], separators=(",", ":")
        )
    return out


def decode_position(
    metadata: str,
) -> tuple[int | None, int, dict[Key, int], int | None]:
    """(watermark, offset read up to, key watermarks, key floor) from commit metadata.
    "wm=<ms>" alone and "wm=<ms>;next=<offset>" (older releases, which judged lateness
    per partition) make the watermark every key's floor."""
    if not metadata:
        return None, 0, {}, None
    head, marker, keys = metadata.partition(";keys=")
    fields = dict(part.partition("=")[::2] for part in head.split(";"))
    try:
        wm = int(fields["wm"])
        if not marker:
            return wm, int(fields.get("next", 0)), {}, wm
        by_key = {(str(o), str(p)): int(w) for o, p, w in json.loads(keys)}
        floor = int(fields["floor"]) if "floor" in fields else None
        return wm, int(fields.get("next", 0)), by_key, floor
    except (KeyError, ValueError, TypeError):
        raise ValueError(
            f"commit metadata {metadata[:200]!r} is not a rollup position "
            "('wm=<ms>;next=<offset>;keys=[[owner, process type, ms], ...]')"
        ) from None


def decode_watermark(metadata: str) -> int | None:
    return decode_position(metadata)[0]
