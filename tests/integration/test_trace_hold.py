"""trace on 3.12+ holds the interpreter's profiling events on while it traces often (commands/trace/agent.py
``Holder``): the holder thread is gone however the command ends (the client's Ctrl-C, its SIGKILL, detach)."""

from __future__ import annotations

import signal
import time

import pytest

from instr_helpers import assert_clean, background, evaluate, instr_target_fixture
from support import RunningTarget, cli

target = instr_target_fixture()

AGENT = "__import__('sys').modules['_flight_profiler.commands.trace.agent']"
HOLDERS = "[t.name for t in __import__('threading').enumerate() if t.name == 'flight_profiler-trace-hold']"


def _until(pid: int, expression: str, wanted: object, seconds: float = 60.0) -> object:
    """Poll an expression in the target until it has the wanted value (or the time is up: the caller asserts)."""
    deadline = time.monotonic() + seconds
    found = evaluate(pid, expression)
    while found != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
        found = evaluate(pid, expression)
    return found


def _held(pid: int, command: str, how: int | None) -> None:
    before = evaluate(pid, AGENT + ".HELD[0]")
    job = background(pid, command)
    try:
        assert _until(pid, AGENT + ".HELD[0] > %d" % before, True) is True  # the events were held
        if how is None:
            assert cli(pid, "detach").returncode == 0  # the job is ended by detach, its client still there
        else:
            job.proc.send_signal(how)
        assert _until(pid, HOLDERS, []) == []  # and let go
    finally:
        if job.proc.poll() is None:
            job.proc.kill()
        job.proc.wait(30)


def test_the_holder_is_gone_however_the_command_ends(target: RunningTarget) -> None:
    if tuple(evaluate(target.pid, "tuple(__import__('sys').version_info[:2])")) < (3, 12):
        pytest.skip("nothing is held before 3.12")
    assert cli(target.pid, "trace __main__ hot -n 1").returncode == 0  # the trace agent is loaded
    # every traced invocation counts: held from the first measure on, never let go while the command runs
    evaluate(target.pid, "(setattr(%s, 'HOLD_SHARE', 0.0), setattr(%s, 'RELEASE_SHARE', 0.0))" % (AGENT, AGENT))
    try:
        for how in (signal.SIGINT, signal.SIGKILL):
            _held(target.pid, "trace __main__ hot -n 100000000 --rate 5", how)
            assert_clean(target.pid, target.extra["globals"])
        assert cli(target.pid, "trace __main__ hot -n 1").returncode == 0
        evaluate(target.pid, "(setattr(%s, 'HOLD_SHARE', 0.0), setattr(%s, 'RELEASE_SHARE', 0.0))" % (AGENT, AGENT))
        _held(target.pid, "trace __main__ hot -n 100000000 --rate 5", None)
    finally:
        if evaluate(target.pid, "'_flight_profiler.commands.trace.agent' in __import__('sys').modules"):
            evaluate(
                target.pid, "(setattr(%s, 'HOLD_SHARE', 0.5), setattr(%s, 'RELEASE_SHARE', 0.25))" % (AGENT, AGENT)
            )
    assert_clean(target.pid, target.extra["globals"])
