"""The peer benchmark's mtail program counts router lines as drainpipe reads them.

Runs Debian's mtail in one-shot mode over 20 literal router lines (plus lines that are
not router lines) and checks its per-minute counters by app and status class and its
histogram of `service`. No timing here: speed is measured by `python -m bench.peers`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.peers import mtail

pytestmark = pytest.mark.skipif(
    not mtail.available(), reason="mtail is not installed (apt-get install -y mtail)"
)

H = "<158>1 2026-11-21T10:{m}.{us}+00:00 host heroku router - "
RID = "request_id=8601b555-6a54-4f5c-9c7b-9d8c2bc4b9d0"
LINES = [
    H + 'at=info method=GET path="/" host=shop.herokuapp.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.1 connect=1ms service=22ms status=200 bytes=656 protocol=https",
    H + 'at=info method=GET path="/cart?x=1 2" host=shop.herokuapp.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.2 connect=0ms service=5ms status=304 bytes=0 protocol=https",
    H + 'at=info method=POST path="/orders" host=shop.herokuapp.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.1 connect=1ms service=130ms status=201 bytes=90 protocol=http2.0 tls=true "
    "tls_version=tls1.3",
    H + 'at=error code=H12 desc="Request timeout" method=GET path="/slow" '
    "host=shop.herokuapp.com " + RID + ' fwd="1.2.3.4" dyno=web.3 connect=1ms '
    "service=30000ms status=503 bytes=0 protocol=https",
    H + 'at=warning code=H27 desc="Client Request Interrupted" method=GET path="/" '
    "host=shop.herokuapp.com " + RID + ' fwd="1.2.3.4" dyno=web.1 connect=1ms '
    "service=40ms status=499 bytes=0 protocol=https",
    H + 'at=info method=GET path="/missing" host=shop.herokuapp.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.2 connect=2ms service=3ms status=404 bytes=12 protocol=https",
    H + 'at=info method=GET path="/" host=shop.herokuapp.com ' + RID + ' fwd="1.2.3.4, 5.6.7.8" '
    "dyno=web.1 connect=1ms service=0ms status=200 bytes=656 protocol=https",
    H + 'at=info method=GET path="/boom" host=shop.herokuapp.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.1 connect=1ms service=900ms status=500 bytes=20 protocol=https",
    H + 'at=info method=GET path="/" host=shop.herokuapp.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.4 connect=1ms service=17ms status=302 bytes=0 protocol=https",
    H + 'at=info method=GET path="/" host=shop.herokuapp.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.1 connect=1ms service=64ms status=200 bytes=656 protocol=https",
    H + 'at=info method=GET path="/" host=blog.example.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.1 connect=1ms service=8ms status=200 bytes=1 protocol=https",
    H + 'at=info method=GET path="/feed" host=blog.example.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.1 connect=1ms service=12ms status=200 bytes=1 protocol=https",
    H + 'at=error code=H13 desc="Connection closed without response" method=POST path="/c" '
    "host=blog.example.com " + RID + ' fwd="1.2.3.4" dyno=web.2 connect=1ms '
    "service=3001ms status=503 bytes=0 protocol=https",
    H + 'at=info method=GET path="/" host=blog.example.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.1 connect=1ms service=1ms status=200 bytes=1 protocol=https",
    H + 'at=info method=GET path="/x" host=blog.example.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.1 connect=1ms service=2ms status=404 bytes=1 protocol=https",
    H + 'at=info method=GET path="/" host=blog.example.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.2 connect=1ms service=4ms status=200 bytes=1 protocol=https",
    H + 'at=info method=GET path="/" host=blog.example.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.2 connect=1ms service=16ms status=301 bytes=1 protocol=https",
    H + 'at=info method=GET path="/" host=blog.example.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.1 connect=1ms service=33ms status=200 bytes=1 protocol=https",
    H + 'at=info method=GET path="/" host=blog.example.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.1 connect=1ms service=2000ms status=502 bytes=1 protocol=https",
    H + 'at=info method=GET path="/" host=blog.example.com ' + RID + ' fwd="1.2.3.4" '
    "dyno=web.3 connect=1ms service=7ms status=200 bytes=1 protocol=https",
]
# (minute, microseconds) of each line: the first six lines of each app in minute 10:00
STAMPS = [("00:01", "000001"), ("00:02", "5"), ("00:30", "123456"), ("00:31", "0"),
          ("00:59", "999999"), ("00:59", "999999"), ("01:00", "000000"), ("01:10", "1"),
          ("01:20", "1"), ("01:59", "1")] * 2  # fmt: skip
NOT_ROUTER = [
    "<45>1 2026-11-21T10:00:05.000000+00:00 host heroku web.1 - source=web.1 "
    "dyno=heroku.1234.8f6b5b7e sample#load_avg_1m=2.46 sample#load_avg_5m=1.06",
    "<190>1 2026-11-21T10:00:06.000000+00:00 host app web.1 - GET /cart service=22ms status=200",
    "<190>1 2026-11-21T10:00:07.000000+00:00 host heroku web.1 - State changed from up to down",
]


def test_mtail_program_counts_router_lines(tmp_path: Path) -> None:
    text = [line.format(m=m, us=us) for line, (m, us) in zip(LINES, STAMPS, strict=True)]
    log = tmp_path / "router.log"
    log.write_text("\n".join(text[:10] + NOT_ROUTER + text[10:]) + "\n")
    counts = mtail.run(log, tmp_path, timeout_s=60).counts
    assert counts.lines == 20
    assert counts.by_class == {
        ("shop", "2026-11-21T10:00", "2"): 2,
        ("shop", "2026-11-21T10:00", "3"): 1,
        ("shop", "2026-11-21T10:00", "4"): 2,
        ("shop", "2026-11-21T10:00", "5"): 1,
        ("shop", "2026-11-21T10:01", "2"): 2,
        ("shop", "2026-11-21T10:01", "3"): 1,
        ("shop", "2026-11-21T10:01", "5"): 1,
        ("blog", "2026-11-21T10:00", "2"): 4,
        ("blog", "2026-11-21T10:00", "4"): 1,
        ("blog", "2026-11-21T10:00", "5"): 1,
        ("blog", "2026-11-21T10:01", "2"): 2,
        ("blog", "2026-11-21T10:01", "3"): 1,
        ("blog", "2026-11-21T10:01", "5"): 1,
    }
    assert counts.hist == {
        ("shop", "2026-11-21T10:00"): (6, 22 + 5 + 130 + 30000 + 40 + 3),
        ("shop", "2026-11-21T10:01"): (4, 0 + 900 + 17 + 64),
        ("blog", "2026-11-21T10:00"): (6, 8 + 12 + 3001 + 1 + 2 + 4),
        ("blog", "2026-11-21T10:01"): (4, 16 + 33 + 2000 + 7),
    }
