"""Rate limits and time budgets with a fake clock (services/ratelimit.py, callprobe.py, usercode.py).

No sleeping and no timed assertions: the modules' clocks are replaced by one
the test advances by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flight_profiler.services import callprobe, ratelimit, usercode
from flight_profiler.services.context import CommandFailed


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    fake = FakeClock()
    monkeypatch.setattr(ratelimit, "perf_counter", fake)
    monkeypatch.setattr(callprobe, "perf_counter", fake)
    yield fake


def test_a_bucket_lets_a_burst_through_then_its_rate(clock: FakeClock) -> None:
    bucket = ratelimit.TokenBucket(2.0)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    assert bucket.next_ok == pytest.approx(clock.now + 0.5)
    clock.advance(0.25)
    assert bucket.take() is False
    clock.advance(0.25)
    assert bucket.take() is True and bucket.take() is False
    assert bucket.skipped_total == 3
    assert bucket.take_skipped() == 3 and bucket.take_skipped() == 0
    clock.advance(3600)  # a long pause refills to the burst, no more
    assert [bucket.take() for _ in range(3)] == [True, True, False]


def test_a_slow_rate_and_an_explicit_burst(clock: FakeClock) -> None:
    bucket = ratelimit.TokenBucket(0.5, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.advance(1.9)
    assert bucket.take() is False
    clock.advance(0.1)
    assert bucket.take() is True


def test_rate_zero_is_no_limit(clock: FakeClock) -> None:
    bucket = ratelimit.TokenBucket(0)
    assert all(bucket.take() for _ in range(1000)) and bucket.skipped_total == 0


def test_a_time_budget_refuses_until_it_has_refilled(clock: FakeClock) -> None:
    budget = ratelimit.TimeBudget(0.2, reserve=0.5)
    assert budget.allow()
    budget.charge(1.0)  # a traced invocation that took a second: 0.5 s in debt
    assert budget.next_ok == pytest.approx(clock.now + 2.5)
    assert budget.allow() is False
    clock.advance(2.4)
    assert budget.allow() is False
    clock.advance(0.6)
    assert budget.allow() is True
    assert budget.refused == 2


def test_a_time_budget_of_zero_is_off(clock: FakeClock) -> None:
    budget = ratelimit.TimeBudget(0.0)
    budget.charge(100.0)
    assert budget.allow() and budget.refused == 0


class Probe(callprobe.CallProbe):
    def record(self, index: int, args: Any, kwargs: Any, returned: Any, error: Any, cost: float, _: Any) -> Any:
        return {"index": index, "args": args, "cost": cost}


def _call(probe: Probe, clock: FakeClock, *args: Any, took: float = 0.001) -> None:
    state = probe.enter(args, None)
    if state is not None:
        clock.advance(took)
        probe.leave(state, args, None, None, None)


def test_a_probe_counts_what_its_rate_turned_away_and_reports_it_with_the_next_result(clock: FakeClock) -> None:
    probe = Probe(False, None, limit=3, rate=1.0, only_errors=False)
    try:
        for n in range(5):
            _call(probe, clock, n)
        clock.advance(1.0)
        _call(probe, clock, 99, took=0.25)
        items = probe.outbox.drain()
    finally:
        probe.close()
    assert [(item["args"], item["skipped"]) for item in items] == [((0,), 0), ((99,), 4)]
    assert items[1]["cost"] == pytest.approx(250.0)
    assert probe.accepted == 2 and not probe.full.is_set()


def test_a_probe_stops_taking_calls_at_its_limit(clock: FakeClock) -> None:
    probe = Probe(False, None, limit=2, rate=0, only_errors=False)
    try:
        for n in range(4):
            _call(probe, clock, n)
        assert probe.full.is_set() and probe.closed
        assert [item["args"] for item in probe.outbox.drain()] == [(0,), (1,)]
    finally:
        probe.close()


def test_a_filter_on_arguments_is_checked_when_the_call_starts(clock: FakeClock) -> None:
    probe = Probe(False, "args[0] > 1", limit=10, rate=0, only_errors=False)
    try:
        assert probe.enter((1,), None) is None
        for n in range(4):
            _call(probe, clock, n)
        assert [item["args"] for item in probe.outbox.drain()] == [(2,), (3,)]
    finally:
        probe.close()


def test_a_filter_on_the_cost_is_checked_when_the_call_ends(clock: FakeClock) -> None:
    probe = Probe(False, "cost > 100", limit=10, rate=0, only_errors=False)
    try:
        _call(probe, clock, 1, took=0.05)
        _call(probe, clock, 2, took=0.2)
        assert [item["args"] for item in probe.outbox.drain()] == [(2,)]
    finally:
        probe.close()


def test_a_filter_that_raises_switches_the_probe_off_and_says_why(clock: FakeClock) -> None:
    probe = Probe(False, "args[5] == 1", limit=10, rate=0, only_errors=False)
    try:
        _call(probe, clock, 1)
        _call(probe, clock, 2)
        assert probe.outbox.drain() == [] and probe.full.is_set()
        reason = probe.switched_off()
        assert reason is not None and reason.startswith("filter 'args[5] == 1' raised IndexError")
    finally:
        probe.close()


def test_a_user_expression_over_its_budget_is_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeClock()
    monkeypatch.setattr(usercode, "monotonic", fake)
    guard = usercode.Guard("filter 'slow'", 10.0)
    try:
        assert guard.call(lambda: 5) == 5
        assert guard.call(lambda: fake.advance(0.011)) is usercode.FAILED
        assert guard.call(lambda: 5) is usercode.FAILED  # off for good
        assert guard.reason is not None and "ran over its budget of 10 ms" in guard.reason
    finally:
        guard.close()


def test_contained_code_over_its_budget_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeClock()
    monkeypatch.setattr(usercode, "monotonic", fake)
    assert usercode.contain(lambda: 7, (), 50.0, "-e 'x'") == 7
    with pytest.raises(CommandFailed, match=r"^-e 'x' ran over its budget of 50 ms: stopped \(--budget-ms\)$"):
        usercode.contain(fake.advance, (0.051,), 50.0, "-e 'x'")
    assert usercode.contain(fake.advance, (3600.0,), None, "console") is None  # no budget: until stopped


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 200.0), (1, 1.0), ("25", 25.0), (3600000, 3600000.0)],
)
def test_budget_of_a_request(value: Any, expected: float) -> None:
    request = {} if value is None else {"budget_ms": value}
    assert usercode.budget_of(request, 200.0) == expected


@pytest.mark.parametrize("value", [0, 0.5, 3600001, "x", [], float("nan"), float("inf")])
def test_budget_of_a_bad_request_is_refused(value: Any) -> None:
    with pytest.raises(CommandFailed, match=r"^--budget-ms must be"):
        usercode.budget_of({"budget_ms": value}, 200.0)
