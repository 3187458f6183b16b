"""Hooks go away, whatever ends the command: -n, Ctrl-C, a killed client, detach; checked from inside the target."""

from __future__ import annotations

import signal

from instr_helpers import assert_clean, background, evaluate, instr_target_fixture, of_kind, state
from interpreters import find_interpreters
from support import RunningTarget, cli, wait_until

INTERPRETERS = find_interpreters()
NEVER = "-f 'args[0] is None' -n 5"  # a filter that never matches: the command runs until stopped


target = instr_target_fixture()


def transitions(pid: int, name: str) -> list[tuple[float, bool]]:
    """(time.monotonic(), whether the function had its own code) each time that changed, seen from the target."""
    found: list[tuple[float, bool]] = evaluate(pid, "m.TRANSITIONS[%r]" % name)
    return found


def test_sigkill_of_the_client_removes_the_hook(target: RunningTarget) -> None:
    """The session ends on the socket's end of file, not on a timeout (no timed assertion: how soon is the
    benchmark's business; the agent has no idle timeout at all, so only the client's death can end it)."""
    watch = background(target.pid, "watch __main__ hot %s" % NEVER)
    assert wait_until(lambda: transitions(target.pid, "hot")[-1:] == [] or not transitions(target.pid, "hot")[-1][1])
    assert "hot" in state(target.pid)["hooks_gone"]
    watch.proc.send_signal(signal.SIGKILL)
    watch.proc.wait()
    assert wait_until(lambda: transitions(target.pid, "hot")[-1][1] is True)
    assert_clean(target.pid, target.extra["globals"])


def test_ctrl_c_removes_every_kind_of_hook(target: RunningTarget) -> None:
    running = [
        background(target.pid, "watch __main__ plain %s" % NEVER),
        background(target.pid, "trace __main__ Shop order %s" % NEVER),
        background(target.pid, "tt -t __main__ fetch %s" % NEVER),
        background(target.pid, "watch __main__ make_counter -nm tick %s" % NEVER),
    ]
    hooked = state(target.pid)["hooks_gone"]
    assert {"plain", "order", "fetch", "tick", "KEPT closures"} <= set(hooked), hooked
    for command in running:
        command.proc.send_signal(signal.SIGINT)
    for command in running:
        assert command.proc.wait(10) == 130  # interrupted, as the attach skill documents
    assert_clean(target.pid, target.extra["globals"])


def test_limit_reached_removes_the_hook(target: RunningTarget) -> None:
    result = cli(target.pid, "watch __main__ make_counter -nm tick -n 2")
    assert len(of_kind(result, "call")) == 2
    assert_clean(target.pid, target.extra["globals"])  # closures made and adopted meanwhile got their code back


def test_two_commands_on_one_function_are_counted(target: RunningTarget) -> None:
    first = background(target.pid, "watch __main__ plain %s" % NEVER)
    second = cli(target.pid, "trace __main__ plain -n 1 -i 0")
    assert len(of_kind(second, "trace")) == 1
    assert "plain" in state(target.pid)["hooks_gone"]  # the first command's hook stays
    first.proc.send_signal(signal.SIGINT)
    assert first.proc.wait(10) == 130
    assert_clean(target.pid, target.extra["globals"])


def test_detach_removes_hooks_of_every_client_and_tt_records(target: RunningTarget) -> None:
    recorded = cli(target.pid, "tt -t __main__ plain -n 2")
    assert len(of_kind(recorded, "record")) == 2
    running = [
        background(target.pid, "watch __main__ stamped %s" % NEVER),
        background(target.pid, "trace __main__ fetch %s" % NEVER),
    ]
    assert cli(target.pid, "detach").returncode == 0
    for command in running:
        command.proc.wait(10)
    assert_clean(target.pid, target.extra["globals"])  # (a fresh agent answers this)
    listing = of_kind(cli(target.pid, "tt -l"), "list")[0]
    assert listing["records"] == [] and listing["kept"] == 0


def test_the_threads_own_profiler_is_put_back(target: RunningTarget) -> None:
    trees = of_kind(cli(target.pid, "trace __main__ profiled_work -n 2 -i 0"), "trace")
    assert len(trees) == 2
    assert [child["name"] for child in trees[0]["root"]["children"]] == ["sum"]  # range() is a type: no event
    before = evaluate(target.pid, "m.PROFILE_EVENTS[0]")
    now = assert_clean(target.pid)
    assert now["profiler_intact"]  # the thread's own profile function is back in place
    assert wait_until(lambda: evaluate(target.pid, "m.PROFILE_EVENTS[0]") > before)  # and still called
    threads = evaluate(target.pid, "sorted(t.name for t in __import__('threading').enumerate())")
    assert "flight_profiler-job-trace" not in threads


def test_a_trace_beside_the_threads_profiler_leaves_nothing_when_its_client_is_killed(target: RunningTarget) -> None:
    # that thread profiles itself: on 3.12+ trace records it with a sys.monitoring tool of its own
    tracing = background(target.pid, "trace __main__ profiled_work -n 1000000 -i 0")
    assert tracing.proc.stdout is not None
    first = tracing.proc.stdout.readline()  # one tree: a traced invocation has run
    assert '"kind": "trace"' in first, first
    has_monitoring = evaluate(target.pid, "hasattr(__import__('sys'), 'monitoring')")
    assert (state(target.pid)["monitoring"] != []) is has_monitoring  # ours, while the trace runs
    tracing.proc.kill()
    tracing.proc.wait(10)
    assert wait_until(lambda: state(target.pid)["monitoring"] == [], timeout=10)  # the tool id is free again
    now = assert_clean(target.pid)
    assert now["profiler_intact"]
