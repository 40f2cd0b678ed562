"""A consumer stage that holds no partitions (a rebalance that never finishes) beats and
would look caught up; after the lag limit its health says it has no partitions."""

from __future__ import annotations

from drainpipe.telemetry.health import MAX_LAG_S, Health


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now_ms(self) -> int:
        return int(self.t * 1000)

    def monotonic(self) -> float:
        return self.t


def test_a_stage_without_partitions_fails_after_the_lag_limit_and_recovers() -> None:
    clock = Clock()
    health = Health(clock)
    rollup = health.stage("rollup")
    for _ in range(int(MAX_LAG_S) + 2):
        clock.t += 1
        rollup.beat(caught_up=True, assigned=False)
    problem = health.problem()
    assert problem is not None and "no partitions" in problem
    assert health.report()["status"] != "ok"
    rollup.beat(caught_up=True, assigned=True)
    assert health.problem() is None
