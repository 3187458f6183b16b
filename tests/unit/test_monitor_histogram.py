"""monitor's fixed-size cost histogram: every cost lands in a bucket whose middle is within 3.2 %."""

from __future__ import annotations

import random

from flight_profiler.commands.monitor.agent import Stats, bucket, middle_ms
from flight_profiler.commands.monitor.model import BUCKETS


def test_buckets_are_ordered_and_close() -> None:
    rng = random.Random(7)
    costs = sorted(10 ** rng.uniform(-3, 6) for _ in range(5000))  # 1 us .. 1000 s, in ms
    indexes = [bucket(cost) for cost in costs]
    assert indexes == sorted(indexes) and indexes[0] >= 0 and indexes[-1] < BUCKETS
    for cost, index in zip(costs, indexes):
        if cost >= 0.004:  # 32 eighths of a microsecond: below that, buckets are 1/8 us wide
            assert abs(middle_ms(index) - cost) / cost <= 0.032, (cost, index, middle_ms(index))
    assert bucket(10.0**9) == BUCKETS - 1 and bucket(-1.0) == 0


def test_percentiles_of_known_costs() -> None:
    stats = Stats()
    for cost in [5.0] * 90 + [50.0] * 9 + [500.0]:
        stats.add(cost, failed=cost == 500.0)
    summary = stats.summary()
    assert (summary["calls"], summary["fail"], summary["success"]) == (100, 1, 99)
    assert abs(summary["p50_ms"] - 5.0) <= 0.16 and abs(summary["p99_ms"] - 50.0) <= 1.6
    assert summary["max_ms"] == 500.0 and summary["avg_ms"] == (450 + 450 + 500) / 100
    assert Stats().summary()["p50_ms"] is None
