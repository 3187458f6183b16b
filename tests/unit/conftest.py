"""Checks every in-process test ends with: nothing hooked, no user code marked, no profiler left on."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest

from flight_profiler.services import hooks, realthreads, usercode

# the agent's threads drop an inherited trace function (an application's debugger must not run in
# them); here they keep it, so that coverage measures what they run
realthreads.TRACE_OURS = True


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    profiler = sys.getprofile()
    yield
    assert hooks.installed() == [], "a test left functions hooked"
    assert usercode.ACTIVE == {}, "a thread is still marked as running user code"
    assert sys.getprofile() is profiler, "a profile function was left on the test's thread"


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times rendered as the golden files have them, whatever this machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
