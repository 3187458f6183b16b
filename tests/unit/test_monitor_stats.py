"""monitor's statistics: exact counts, min, max and average; percentiles from a bounded uniform sample."""

from __future__ import annotations

import random

from flight_profiler.commands.monitor.agent import MonitorProbe, Stats
from flight_profiler.commands.monitor.model import SAMPLE_MAX


def test_percentiles_of_known_costs() -> None:
    stats = Stats()
    for cost in [5.0] * 90 + [50.0] * 9 + [500.0]:
        stats.add(cost, failed=cost == 500.0)
    summary = stats.summary()
    assert (summary["calls"], summary["fail"], summary["success"]) == (100, 1, 99)
    assert summary["p50_ms"] == 5.0 and summary["p99_ms"] == 50.0
    assert summary["max_ms"] == 500.0 and summary["avg_ms"] == (450 + 450 + 500) / 100
    assert Stats().summary()["p50_ms"] is None


def test_the_sample_stays_bounded_and_uniform() -> None:
    rng = random.Random(3)
    stats = Stats()
    costs = [rng.uniform(0.0, 100.0) for _ in range(250_000)]
    for start in range(0, len(costs), 7_777):  # batches of any size, as the drains deliver them
        stats.absorb(costs[start : start + 7_777], failed=False)
    assert stats.calls == len(costs) and len(stats.sample) <= SAMPLE_MAX
    summary = stats.summary()
    assert summary["max_ms"] == round(max(costs), 4) and abs(summary["avg_ms"] - sum(costs) / len(costs)) <= 1e-4
    assert 47.0 <= summary["p50_ms"] <= 53.0 and 98.0 <= summary["p99_ms"] <= 100.0  # uniform 0..100


def test_late_appends_to_a_collected_list_are_still_counted() -> None:
    probe = MonitorProbe(is_method=False, filter_source=None)
    late = probe.ok  # what a thread holds when it was switched out between loading the list and appending
    probe.ok.append(1.0)
    probe.drain()
    late.append(2.0)  # lands in the list the job thread already took
    probe.failed.append(3.0)
    stats = probe.swap()
    assert (stats.calls, stats.fail, stats.total) == (3, 1, 6.0)
