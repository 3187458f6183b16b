"""Attach on every interpreter x main-thread situation; the target must stay healthy."""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from flight_profiler.agent.loader import START_MODULES
from flight_profiler.attach import procfs
from flight_profiler.attach.bootstrap import package_dir
from flight_profiler.attach.paths import agent_socket
from interpreters import find_interpreters
from support import agent_threads, cli, cpu_hogs, start_target, wait_until


@pytest.fixture(scope="module", autouse=True)
def _hogs() -> Iterator[None]:
    """FP_TEST_HOGS=2: two CPU hogs beside the whole module (the claim is "healthy under load")."""
    with cpu_hogs():
        yield


INTERPRETERS = find_interpreters()
NOBODY = 65534
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
        assert wait_until(lambda: not agent_threads(target.pid), timeout=30)
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
        stem = os.path.basename(agent_socket(target.pid))[: -len(".sock")]
        leftovers = [n for n in os.listdir("/tmp/flight_profiler-%d" % os.getuid()) if n.startswith(stem + ".")]
        stack = cli(target.pid, "stack")
        assert stack.returncode == 0
        main = stack.results[0]["threads"][0]
        assert main["name"] == "MainThread" and main["owns_gil"]
        # The injector may run the bootstrap on the main thread itself (the GIL is its own there). While it waits
        # for the agent thread to start, that thread can get past its claim and listen before the main thread
        # takes the GIL back for good; the client then finds the ticket gone and says the agent answers once the
        # GIL is released. Its socket, if it got that far, is a live agent's (detach removes it), not a file the
        # client left behind.
        left = [n for n in leftovers if ".boot-" not in n and not n.endswith(".lock")]
        if "could not finish starting" in result.errors[0]:
            names = [thread["name"] for thread in stack.results[0]["threads"]]
            assert left in ([], [stem + ".sock"]) and "flight_profiler-agent" in names, (leftovers, names)
        else:
            assert left == [], leftovers
        assert target.healthy("gilheld")
    finally:
        target.stop()


def _tracer_names(pid: int) -> set[str]:
    """The command name of whatever traces ``pid`` now (TracerPid), if anything."""
    try:
        tracer = procfs.tracer_pid(procfs.read_status(pid))
        return {procfs.process_name(tracer)} if tracer else set()
    except OSError:
        return set()  # gone meanwhile


# 3.11 on: older thread states hold no OS thread id, which py-spy then finds only by stopping the target
NATIVE_IDS = [(i, p) for i, p in INTERPRETERS if tuple(map(int, i.lstrip("deb").split("."))) >= (3, 11)]
NATIVE_IDS = NATIVE_IDS[:1] + NATIVE_IDS[1:][-1:]  # the oldest and the newest: the client's wait is the same


@pytest.mark.parametrize(("name", "python"), NATIVE_IDS, ids=[i for i, _ in NATIVE_IDS])
def test_waiting_for_an_agent_behind_a_held_gil_never_stops_the_target(name: str, python: str) -> None:
    """While the client waits for an agent that cannot start (the GIL held in C), it asks once a second
    who holds the GIL, reading from outside without stopping the target: no py-spy ever traces it. (A
    stopping read froze all of the target's threads each time, ~80 ms at 200 threads, the agent's own
    starting thread among them.)"""
    target = start_target(python, "service_target.py", "gilheld", "100")
    try:
        argv = [sys.executable, "-m", "flight_profiler", str(target.pid), "--cmd", "getglobal __main__ CONFIG"]
        client = subprocess.Popen(
            [*argv, "--timeout", "4", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        tracers: set[str] = set()
        while client.poll() is None:  # a stopping read of 100 threads lasts milliseconds: this sees it
            tracers |= _tracer_names(target.pid)
        out, err = client.communicate()
        assert client.returncode != 0 and "GIL held by thread %d" % target.pid in out + err, out + err
        assert not any(name.startswith("py-spy") for name in tracers), tracers
        assert target.healthy("gilheld")
    finally:
        target.stop()


def _start_files() -> set[str]:
    """The source files of ``START_MODULES`` (what the agent compiles in one call)."""
    root, found = package_dir(), set()
    for suffix in START_MODULES:
        relative = suffix.lstrip(".").replace(".", os.sep)
        package = os.path.join(root, relative, "__init__.py")
        found.add(package if os.path.exists(package) else os.path.join(root, relative + ".py"))
    return found


def _loader_file() -> str:
    return os.path.join(package_dir(), "agent", "loader.py")


def _same_bytecode(python: str) -> bool:
    """The target interpreter has this one's minor version and magic number (the client ships it code)."""
    probe = "import sys, importlib.util; print(sys.version_info[:2], importlib.util.MAGIC_NUMBER.hex())"
    theirs = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    return theirs == "%s %s" % (sys.version_info[:2], importlib.util.MAGIC_NUMBER.hex())


@pytest.mark.parametrize(("name", "python"), INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def test_agent_start_with_many_threads_reads_one_file_and_compiles_in_one_go(
    name: str, python: str, tmp_path: str
) -> None:
    """What the agent asks of the OS and the compiler up to its first answer, counted in the target.

    With N busy threads every time the agent lets go of the GIL it waits up to N switch
    intervals to get it back (a file-system call, an import through sys.path, every 5 ms
    of compiling): the attach then grows with the threads. The count is exact, so the
    test needs no clock: one open (the bundle), no search of sys.path, no directory
    listing, each module compiled once, the start set compiled before any of it runs.
    And only what the answers run is compiled (each start costs its target the CPU of
    compiling, most of an agent's start): a getglobal of a plain value compiles neither the
    capture's repr half, nor the watchdog, nor the detach's sweep.
    """
    events = _audited_getglobal(python, str(tmp_path), "40")
    compiled = _compiled_once_from_one_file(events)
    # none of the start set, nor what most first commands load (COMMON_MODULES, the capture here), is
    # compiled in the target: the client compiled it for our own minor version, the target's own
    # interpreter for any other (attach/compiler), and the agent unmarshalled it
    root = package_dir()
    capture = os.path.join(root, "services", "capture.py")  # the getglobal did capture
    shipped = _start_files() | {_loader_file(), capture}
    assert not shipped & set(compiled), shipped & set(compiled)
    if not _same_bytecode(python):  # that interpreter's bytecode was kept for the next client (attach/codecache)
        kept = os.path.join(os.environ["XDG_CACHE_HOME"], "flight_profiler", "bytecode")
        assert any(len(name) == 64 for name in os.listdir(kept)), os.listdir(kept)
    lazy = {os.path.join(root, *parts) for parts in (("services", "capture_repr.py"), ("services", "watchdog.py"))}
    lazy.add(os.path.join(root, "agent", "sweep.py"))
    assert not lazy & set(compiled), lazy & set(compiled)


def _audited_getglobal(
    python: str, directory: str, threads: str, cli_args: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """The audit events of our agent's threads in a target of ``python`` over a module and a getglobal."""
    record = os.path.join(directory, "record.json")
    target = start_target(python, "audit_target.py", record, threads)
    try:
        first = cli(target.pid, "module /x", *cli_args, timeout=60)
        assert first.returncode == 0, first.stderr
        result = cli(target.pid, "getglobal os sep", timeout=60)
        assert result.returncode == 0 and result.results[0]["value"]["v"] == os.sep, result.stderr
        os.kill(target.pid, signal.SIGUSR1)
        assert wait_until(lambda: os.path.exists(record), timeout=10)
        with open(record) as fh:
            events = [(event, arg) for event, arg, _ in json.load(fh)]
        assert cli(target.pid, "detach").returncode == 0
    finally:
        target.stop()
    if cli_args:
        events.append(("stderr", first.stderr))
    return events


def _compiled_once_from_one_file(events: list[tuple[str, str]]) -> list[str]:
    """One open (the bundle), no search of sys.path, no listing; each module compiled once: the compiled."""
    kinds = collections.Counter(event for event, _ in events)
    opened = [arg for event, arg in events if event == "open"]
    assert len(opened) == 1 and opened[0].endswith(".bundle"), opened
    assert kinds["import.find"] == 0 and kinds["os.listdir"] == 0 and kinds["os.scandir"] == 0, kinds
    compiled = [arg for event, arg in events if event == "compile"]
    assert compiled and all(count == 1 for count in collections.Counter(compiled).values()), compiled
    assert not any(arg.endswith(".bundle") for arg in compiled)
    return compiled


def _other_minor_pyenv() -> str | None:
    """An interpreter of another minor version than ours that finds its prefix wherever its binary is
    copied (pyenv's: an absolute run path, a built-in prefix), or None."""
    for _name, python in INTERPRETERS:
        if "/.pyenv/" in os.path.realpath(python) and not _same_bytecode(python):
            return os.path.realpath(python)
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root): a binary of another uid")
def test_root_never_runs_a_target_binary_another_user_owns_and_the_target_compiles_in_one_go(tmp_path: str) -> None:
    """A root target running a binary another user owns: the client does not run that binary to compile
    for it (the user could make it do anything, as root), says so with --debug, and the target compiles
    the start set itself, all of it before any of it runs (one C call: one wait for the GIL)."""
    original = _other_minor_pyenv()
    if original is None:
        pytest.skip("needs a pyenv interpreter of another minor version than the client's")
    theirs = os.path.join(str(tmp_path), "theirs")
    os.makedirs(os.path.join(theirs, "bin"))
    python = os.path.join(theirs, "bin", "python")
    shutil.copy(original, python)
    for path in (theirs, os.path.join(theirs, "bin"), python):
        os.chown(path, NOBODY, NOBODY)
    os.chmod(str(tmp_path), 0o755)
    events = _audited_getglobal(python, str(tmp_path), "4", ("--debug",))
    stderr = events.pop()[1]
    assert "the target compiles our start set: %s belongs to uid %d: not run as root" % (python, NOBODY) in stderr
    compiled = _compiled_once_from_one_file(events)
    start = _start_files()
    assert start <= set(compiled), start - set(compiled)
    positions = [index for index, (event, arg) in enumerate(events) if event == "compile" and arg in start]
    first_run = next(
        index for index, (event, arg) in enumerate(events) if event == "exec" and any(f in arg for f in start)
    )
    assert max(positions) < first_run, "a start module was compiled after the start set began to run"
