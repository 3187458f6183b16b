"""Attach on every interpreter x main-thread situation; the target must stay healthy."""

from __future__ import annotations

import os

import pytest

from interpreters import find_interpreters
from support import agent_threads, cli, start_target, wait_until

INTERPRETERS = find_interpreters()
SCENARIOS = ["sleep", "sleeploop", "event", "accept", "busy", "threads", "threadsbusy"]


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize(("name", "python"), INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def test_attach_commands_detach_healthy(name: str, python: str, scenario: str) -> None:
    target = start_target(python, "service_target.py", scenario)
    try:
        result = cli(target.pid, "getglobal __main__ CONFIG -x 2", "--debug", timeout=60)
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert result.results[0]["value"]["len"] == 3
        assert cli(target.pid, "detach").returncode == 0
        assert wait_until(lambda: not agent_threads(target.pid), timeout=3)
        assert target.healthy(scenario), "target did not exit 0 on SIGUSR1 after detach"
    finally:
        target.stop()


@pytest.mark.parametrize(("name", "python"), INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def test_gil_held_in_native_code(name: str, python: str) -> None:
    """Nothing can run Python while the main thread keeps the GIL: say so, and keep `stack` working."""
    target = start_target(python, "service_target.py", "gilheld")
    try:
        result = cli(target.pid, "getglobal __main__ CONFIG", "--timeout", "4", timeout=60)
        assert result.returncode != 0
        assert "GIL held by thread %d" % target.pid in result.errors[0]
        leftovers = [n for n in os.listdir("/tmp/flight_profiler-%d" % os.getuid()) if n.startswith("agent-%d." % target.pid)]
        assert [n for n in leftovers if ".boot-" not in n] == [], leftovers
        stack = cli(target.pid, "stack")
        assert stack.returncode == 0
        main = stack.results[0]["threads"][0]
        assert main["name"] == "MainThread" and main["owns_gil"]
        assert target.healthy("gilheld")
    finally:
        target.stop()
