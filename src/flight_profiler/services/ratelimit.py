"""Budgets that keep an instrumenting command cheap for the target (runs in the target).

A watch on a function called a million times a second must not try to show a
million results: the target would pay for capturing each one and its memory
would grow with the backlog. ``TokenBucket`` lets through at most ``rate``
results a second (bursts up to ``burst``) and counts what it turned away, so
the user is told how many calls were skipped.

``TimeBudget`` is the same idea for ``trace``: a traced invocation runs several
times slower, so the tracer may spend at most a fraction of wall-clock time
inside traced invocations; the others run at the hook's plain cost.
"""

from __future__ import annotations

from time import perf_counter

from . import realthreads


class TokenBucket:
    """At most ``rate`` acceptances a second, ``burst`` at once; thread-safe.

    A ``rate`` of 0 means no limit. The bucket starts full, so the first
    ``burst`` calls are consecutive: ``watch -n 10`` shows ten calls in a row.
    ``next_ok`` (a ``perf_counter`` time) lets a hot path turn a call away
    without the lock: before it, no token can be had; such a call is counted in
    ``skipped_total`` without the lock too (a count lost to a thread switch is tolerable).
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = float(rate)
        self.capacity = float(burst if burst is not None else max(rate, 1.0))
        self.tokens = self.capacity
        self.stamp = perf_counter()
        self.next_ok = 0.0
        self.skipped_total = 0
        self._reported = 0  # skipped_total when ``take_skipped`` last ran
        self._lock = realthreads.allocate_lock()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        with self._lock:
            now = perf_counter()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                taken = True
            else:
                self.skipped_total += 1
                taken = False
            self.next_ok = now if self.tokens >= 1.0 else now + (1.0 - self.tokens) / self.rate
            return taken

    def take_skipped(self) -> int:
        """Calls turned away since the previous call (reported with the next result)."""
        with self._lock:
            total = self.skipped_total
            count, self._reported = total - self._reported, total
        return count


class TimeBudget:
    """Seconds of traced time that may be spent per second of wall time (thread-safe).

    ``share`` is the fraction (0.2: a fifth of the time); ``reserve`` seconds can
    be spent at once. The cost of a traced invocation is known only at its end,
    so the balance can go negative; tracing then waits until it has refilled
    (``next_ok``, readable without the lock).
    """

    def __init__(self, share: float, reserve: float = 0.5) -> None:
        self.share = float(share)
        self.reserve = float(reserve)
        self.balance = self.reserve
        self.stamp = perf_counter()
        self.next_ok = 0.0
        self.refused = 0
        self._lock = realthreads.allocate_lock()

    def allow(self) -> bool:
        if self.share <= 0:
            return True
        if perf_counter() < self.next_ok:
            self.refused += 1
            return False
        with self._lock:
            self._refill()
            if self.balance > 0:
                return True
            self.refused += 1
            return False

    def charge(self, seconds: float) -> None:
        if self.share <= 0:
            return
        with self._lock:
            self._refill()
            self.balance -= seconds
            if self.balance <= 0:
                self.next_ok = self.stamp + (-self.balance) / self.share

    def _refill(self) -> None:
        now = perf_counter()
        self.balance = min(self.reserve, self.balance + (now - self.stamp) * self.share)
        self.stamp = now
