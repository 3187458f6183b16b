"""A target that fights back (tests/targets/adversary_target.py): the agent survives it and every command
still answers, with one line where it cannot.

The target holds a non-module in ``sys.modules`` whose ``__class__`` and ``__getattr__`` raise, a module
whose ``__getattr__`` (PEP 562) never returns, objects whose ``__class__`` is a raising property, and
names and exception messages with escapes and a lone surrogate. Each of these once ended the session's
thread (the client saw "lost the connection"), or held it for good.
"""

from __future__ import annotations

import os
import signal
import time

from inproc_client import client
from support import TARGETS, RunningTarget, cli, target_fixture

target = target_fixture("adversary_target.py")


def _alive_and_answering(pid: int) -> None:
    result = client(pid, "getglobal __main__ EVIL_TEXT")
    assert result.returncode == 0, result.stderr
    assert result.results[0]["value"]["v"].startswith("text\x1b]0;"), result.results


def test_a_non_module_in_sys_modules_is_one_error_and_no_lost_session(target: RunningTarget) -> None:
    """``sys.modules["lazymod"]`` is an object whose ``__class__`` raises: isinstance() ran it."""
    assert cli(target.pid, "module /x").returncode == 0  # the agent is in (the real attach)
    result = client(target.pid, "getglobal lazymod x")
    assert result.returncode == 1
    assert result.errors and "not a module" in result.errors[0], result.errors
    assert "lost the connection" not in result.errors[0]
    _alive_and_answering(target.pid)


def test_commands_that_walk_sys_modules_run_none_of_its_objects_code(target: RunningTarget) -> None:
    for command in (
        "module %s" % os.path.join(TARGETS, "adversary_target.py"),
        "sc Service -d",
        "sm Service.handle -d",
    ):
        result = client(target.pid, command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert result.results, command
    assert client(target.pid, "sc Service").results[0]["matches"][0]["name"] == "__main__.Service"
    _alive_and_answering(target.pid)


def test_a_module_getattr_that_never_returns_is_not_called(target: RunningTarget) -> None:
    """``blockmod.__getattr__`` loops for good: the lookup ran it on the session's thread without a budget,
    then within one; a module's __getattr__ is no longer called at all (see the lazy modules below)."""
    started = time.monotonic()
    result = client(target.pid, "getglobal blockmod x", timeout=60)
    assert result.returncode == 1, result.stdout
    assert result.errors and "computes missing names in its __getattr__" in result.errors[0], result.errors
    assert time.monotonic() - started < 5
    _alive_and_answering(target.pid)


def test_a_metaclass_getattr_that_never_returns_is_stopped_at_the_budget(target: RunningTarget) -> None:
    started = time.monotonic()
    result = client(target.pid, "getglobal __main__ Blocked x", timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 1, result.stdout
    assert result.errors and "ran over the budget of 5000 ms" in result.errors[0], result.errors
    assert took < 30, took
    result = client(target.pid, "getglobal __main__ Blocked x --budget-ms 300", timeout=60)  # the lookup's budget
    assert result.returncode == 1 and "ran over the budget of 300 ms" in result.errors[0], result.errors
    _alive_and_answering(target.pid)


def test_a_lazy_module_is_never_imported_by_a_lookup(target: RunningTarget) -> None:
    """importlib.util.LazyLoader's module runs its import at its first attribute read, and a lazy package
    (transformers, lazy_loader) imports a submodule in its __getattr__: each lookup ran the program's
    import on our thread (side effects, seconds with the import lock held) where the program never did."""
    refusals = {
        "getglobal lazyloaded value": "imported lazily",
        "vmtool -a getInstances -c lazyloaded Thing": "imported lazily",
        "watch lazyloaded value -n 1": "imported lazily",
        "source lazyloaded value": "imported lazily",
        "getglobal lazypkg models": "computes missing names in its __getattr__",
        "trace lazypkg models -n 1": "computes missing names in its __getattr__",
    }
    for command, reason in refusals.items():
        result = client(target.pid, command)
        assert result.returncode == 1 and len(result.errors) == 1, (command, result.stdout)
        assert reason in result.errors[0], (command, result.errors)
    # values that hold them: a repr or isinstance() asked them for __loader__, __file__ or __class__
    every = client(target.pid, "vmtool -a getInstances -c types ModuleType -n 2000")
    assert every.returncode == 0, every.stdout[-2000:]
    assert "<module 'lazyloaded' (imported lazily, not loaded yet)>" in every.stdout
    assert client(target.pid, "getglobal sys modules -x 2").returncode == 0
    ran = client(target.pid, "getglobal __main__ LAZY_RAN")
    assert ran.results[0]["value"]["len"] == 0, ran.results  # none of the program's code ran
    _alive_and_answering(target.pid)


def test_shadowed_names_dicts_and_mros_run_none_of_the_programs_code(target: RunningTarget) -> None:
    """A module subclass whose ``__name__`` and ``__dict__`` are properties that never return, and a
    metaclass that shadows ``__name__``, ``__mro__`` and ``__dict__`` so: getglobal read them outside
    any budget, on the session's thread, which then never answered again."""
    found = client(target.pid, "getglobal shadowmod VALUE", timeout=60)
    assert found.returncode == 0, found.stderr
    assert found.results[0]["value"]["v"] == 42
    found = client(target.pid, "getglobal __main__ Shadowed attr", timeout=60)
    assert found.returncode == 0, found.stderr
    assert found.results[0]["value"]["v"] == 7
    found = client(target.pid, "getglobal __main__ SHADOWED", timeout=60)
    assert found.returncode == 0, found.stderr
    assert found.results[0]["type"] == "Shadowed"
    # the capture too: it read the class's __mro__/__name__/__module__, ran the properties and lost the
    # value to the budget (5 s a capture)
    assert "error" not in found.results[0]["value"], found.results[0]["value"]
    found = client(target.pid, "vmtool -a getInstances -c __main__ Shadowed", timeout=60)  # read __module__
    assert found.returncode == 0, found.stderr
    assert found.results[0]["count"] == 1, found.results
    assert "error" not in found.results[0]["instances"][0], found.results[0]["instances"]
    missing = client(target.pid, "getglobal shadowmod nope", timeout=60)
    assert missing.returncode == 1 and "not found in shadowmod" in missing.errors[0], missing.errors
    _alive_and_answering(target.pid)


def test_an_abcs_subclass_hook_that_never_returns_is_stopped_at_vmtools_budget(target: RunningTarget) -> None:
    """vmtool asked ``issubclass`` of every type in the heap: an ABC's ``__subclasshook__`` ran on the
    walk's thread with no budget, and one that looped held that thread, and the command, for good."""
    started = time.monotonic()
    result = client(target.pid, "vmtool -a getInstances -c __main__ Hooked --budget-ms 300", timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 1, result.stdout
    assert result.errors and "Hooked's __subclasscheck__" in result.errors[0], result.errors
    assert "ran over the budget of 300 ms" in result.errors[0], result.errors
    _alive_and_answering(target.pid)


def test_a_handler_property_that_never_returns_is_stopped_at_loggers_budget(target: RunningTarget) -> None:
    """logger read handlers' and loggers' attributes (a Handler subclass's ``stream`` property) with no
    budget on its job's thread: one that looped held it for good, and the client waited."""
    assert client(target.pid, 'getglobal __main__ LOOPING -e "target.append(1)"').returncode == 0
    try:
        started = time.monotonic()
        result = client(target.pid, "logger", timeout=60)
        assert time.monotonic() - started < 30
        assert result.returncode == 1, result.stdout[-300:]
        assert result.errors and "ran over the budget of 5000 ms" in result.errors[0], result.errors
    finally:
        assert client(target.pid, 'getglobal __main__ LOOPING -e "target.clear()"').returncode == 0
    assert client(target.pid, "logger").returncode == 0
    _alive_and_answering(target.pid)


def test_names_of_megabytes_are_cut_in_sc_sm_and_source(target: RunningTarget) -> None:
    """A class, a function and a method named with 2-5 MB: sc and sm sent each name whole, the line
    passed the protocol's 4 MB limit and the client lost the session. The pattern still sees it all."""
    for command in ("sc __main__.Huge*", "sc __main__.Huge* -d", "sm __main__.Huge*", "sm __main__.Huge* -d"):
        result = client(target.pid, command, timeout=60)
        assert result.returncode == 0, (command, result.stderr[-300:])
        names = [match["name"] for match in result.results[0]["matches"]]
        assert names and all(len(name) < 1100 for name in names), (command, [len(n) for n in names])
        assert any(name.endswith(" chars)") for name in names), (command, names)
    found = client(target.pid, "getglobal __main__ HUGE_INSTANCE", timeout=60)
    assert found.returncode == 0 and len(found.results[0]["type"]) < 300, found.stderr[-300:]
    _alive_and_answering(target.pid)


def test_stack_a_imports_nothing_and_survives_a_lying_class(target: RunningTarget) -> None:
    """stack -a imported asyncio into every target; where asyncio is loaded and no task is registered it
    looks through the heap with isinstance(), which ran LIAR's raising ``__class__``."""
    loaded = "getglobal sys modules -e \"'asyncio' in target\""
    assert client(target.pid, loaded).results[0]["value"]["v"] is False
    result = client(target.pid, "stack -a")
    assert result.returncode == 0, result.stderr
    assert client(target.pid, loaded).results[0]["value"]["v"] is False, "stack -a imported asyncio"
    # now the program imports asyncio (no task runs): the heap is looked through
    assert client(target.pid, "getglobal builtins __import__ -e \"bool(target('asyncio'))\"").returncode == 0
    result = client(target.pid, "stack -a")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.results and result.results[0]["loops"] == []
    _alive_and_answering(target.pid)


def test_source_and_reload_read_only_regular_files(target: RunningTarget) -> None:
    """A code object's file name is the program's: a FIFO blocked the read in C for good (the job's
    thread stayed stuck, the client waited), and reload read /dev/zero until the target's memory ran out."""
    for command, shown in (
        ("source fifomod f", "is not a regular file"),
        ("source fifomod", "is not a regular file"),
        ("reload fifomod f", "is not a regular file"),
        ("reload zeromod f", "/dev/zero is not a regular file"),
    ):
        started = time.monotonic()
        result = client(target.pid, command, timeout=30)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert result.errors and shown in result.errors[0], (command, result.errors)
        assert time.monotonic() - started < 15, command
    _alive_and_answering(target.pid)


def test_a_stopped_target_with_an_agent_is_one_line_at_once(target: RunningTarget) -> None:
    """A first attach refuses a SIGSTOPped target at once; one whose agent already ran waited --timeout
    (30 s) for a handshake nothing in the process could answer, and did not say why."""
    _alive_and_answering(target.pid)
    os.kill(target.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = cli(target.pid, "getglobal __main__ EVIL_TEXT")
        assert result.returncode == 1
        assert result.errors == ["pid %d is stopped (job control); resume it with: kill -CONT %d" % ((target.pid,) * 2)]
        assert time.monotonic() - started < 15
    finally:
        os.kill(target.pid, signal.SIGCONT)
    _alive_and_answering(target.pid)


def test_tab_completion_runs_none_of_the_programs_code(target: RunningTarget) -> None:
    """complete read members with getattr and vars(): blockmod's __getattr__ held the session for good."""
    result = client(target.pid, "complete member --module blockmod --cls x", timeout=30)
    assert result.returncode == 0 and result.results == [{"names": []}], (result.stdout, result.stderr)
    for module in ("lazymod", "__main__"):
        result = client(target.pid, "complete member --module %s --cls LIAR" % module, timeout=30)
        assert result.returncode == 0, (result.stdout, result.stderr)
    assert "handle" in client(target.pid, "complete member han --module __main__ --cls Service").results[0]["names"]
    _alive_and_answering(target.pid)


def test_names_of_megabytes_are_cut_in_every_event(target: RunningTarget) -> None:
    """Thread and logger names went whole into events: a 3 MB thread name made dashboard and thread -b
    one message over the client's 4 MB limit ("lost the connection"), and every watch hit 3 MB long.
    Last in this module: it renames the target's threads."""
    huge = "'N' * 3000000"
    rename = (
        "[setattr(t, 'name', %s + t.name) for t in list(target.values()) if t.name.startswith(('caller', 'waiter'))]"
        % huge
    )
    assert client(target.pid, 'getglobal threading _active -e "%s"' % rename).returncode == 0
    rename = "setattr(target.manager.loggerDict['plain'], 'name', %s)" % huge
    assert client(target.pid, 'getglobal logging root -e "%s"' % rename).returncode == 0
    for command in (
        "dashboard -i 200 -n 1",
        "thread -b -i 0",
        "watch __main__ work -n 1",
        "logger",
        "tt -t __main__ work -n 1",
    ):
        for json_output in (True, False):
            result = client(target.pid, command, *([] if json_output else ["--no-color"]), json_output=json_output)
            assert result.returncode == 0, (command, result.stdout[-300:], result.stderr[-300:])
            assert len(result.stdout) + len(result.stderr) < 100_000, (command, len(result.stdout))
            if json_output:  # the text of a table may cut the name further, to the terminal's width
                assert "N...(30000" in result.stdout, (command, result.stdout[-300:])
    _alive_and_answering(target.pid)
