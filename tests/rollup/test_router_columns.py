"""Long-lived connections count in throughput and errors but have no response time."""

from __future__ import annotations

import math

import numpy as np

from drainpipe import accum
from drainpipe.model import ROUTER, Summary


def test_websockets_and_h15_closes_stay_out_of_the_response_time() -> None:
    columns = {
        "ts_ms": np.zeros(4, dtype=np.int64),
        "service_ms": np.array([20.0, 45231.0, 55000.0, 30.0]),
        # an ordinary 200, a websocket upgrade, an H15 idle close, another 200
        "status": np.array([200, 101, 503, 200], dtype=np.int16),
        "code": np.array([0, 0, 15, 0], dtype=np.int16),
    }
    s = Summary("app", "web", ROUTER.family, 60, 0)
    accum.add_columns(s, accum.router_columns(columns))
    stat = s.stats["service_ms"]
    assert (stat.count, stat.min, stat.max) == (2, 20.0, 30.0)
    assert s.counts == {"1xx": 1, "2xx": 2, "5xx": 1, "H15": 1}
    assert not math.isnan(columns["service_ms"][1])  # the raw batch is left as it was
