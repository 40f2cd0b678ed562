"""Format simulated syslog lines exactly as a Logplex drain delivers them (pure).

Times are integer epoch microseconds: Logplex stamps every line to the microsecond.
"""

from __future__ import annotations

import time
from typing import Final

PRI_ROUTER: Final = 158  # local3.info, as `heroku router` lines arrive
PRI_DYNO: Final = 45  # syslog.notice, as `heroku web.1` runtime metrics and lifecycle arrive
PRI_APP: Final = 190  # local7.info, as `app api` lines arrive

_CACHE_LIMIT: Final = 4096
_seconds: dict[int, str] = {}  # epoch second -> "YYYY-MM-DDTHH:MM:SS": lines share seconds


def timestamp(t_us: int) -> str:
    """`2026-11-21T10:00:00.123456+00:00` for epoch microseconds, UTC."""
    sec, us = divmod(t_us, 1_000_000)
    head = _seconds.get(sec)
    if head is None:
        if len(_seconds) >= _CACHE_LIMIT:
            _seconds.clear()
        head = _seconds[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{head}.{us:06d}+00:00"


# <158>1 2026-11-21T10:00:00.123456+00:00 host heroku router - at=info method=GET path="/" ...
def syslog(pri: int, t_us: int, appname: str, procid: str, text: str) -> str:
    """One RFC 5424 message in Logplex's layout, newline included (it is part of the frame)."""
    return f"<{pri}>1 {timestamp(t_us)} host {appname} {procid} - {text}\n"


# source=web.1 dyno=heroku.12345.8f6b5b7e-54c6-4b8c-9b1e-2c1f2a6e3f10 sample#memory_total=21.00MB sample#memory_rss=21.22MB sample#memory_cache=0.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages sample#memory_quota=512.00MB  # noqa: E501
def memory_text(
    source: str,
    dyno_id: str,
    total: float,
    rss: float,
    cache: float,
    swap: float,
    pgpgin: int,
    pgpgout: int,
    quota: float,
) -> str:
    return (
        f"source={source} dyno={dyno_id} sample#memory_total={total:.2f}MB "
        f"sample#memory_rss={rss:.2f}MB sample#memory_cache={cache:.2f}MB "
        f"sample#memory_swap={swap:.2f}MB sample#memory_pgpgin={pgpgin}pages "
        f"sample#memory_pgpgout={pgpgout}pages sample#memory_quota={quota:.2f}MB"
    )


# source=web.1 dyno=heroku.12345.8f6b5b7e-54c6-4b8c-9b1e-2c1f2a6e3f10 sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99  # noqa: E501
def load_text(source: str, dyno_id: str, one: float, five: float, fifteen: float) -> str:
    return (
        f"source={source} dyno={dyno_id} sample#load_avg_1m={one:.2f} "
        f"sample#load_avg_5m={five:.2f} sample#load_avg_15m={fifteen:.2f}"
    )


def uuid4(bits: int) -> str:
    """A version-4 UUID string from 128 random bits (faster than `uuid.UUID`)."""
    h = f"{bits:032x}"
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"
