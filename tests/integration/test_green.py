"""gevent and eventlet applications: our threads stay real, and leave nothing of the library's behind.

Their monkeypatching turns ``threading``, locks and ``time.sleep`` into greenlet versions. What our
code takes from them runs the library in our own OS threads: a gevent sleep or a wait on a gevent
lock there makes a hub for that thread (an epoll and an eventfd descriptor that the process keeps
after the thread ends), and a ``threading.Thread`` started after the patch is a greenlet of the
application's hub. Real applications (tests/targets/green_target.py), in venvs with the real
library, really attached; the descriptors of the process are compared before and after.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from typing import Iterator

import pytest

from interpreters import find_interpreters
from json_schemas import problems
from support import RunningTarget, cli, green_interpreters, green_python, start_target, wait_until

GREEN = green_interpreters(find_interpreters())
IDS = ["%s-%s" % (library, name) for library, name, _ in GREEN]
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
# every command whose agent half sleeps, waits, walks the heap or hooks (the heap walks pause with a
# sleep between slices: a gevent sleep made a hub in our thread, 2 descriptors a command), and console
# lines that use the patched API (our thread closes the hub they made before it ends)
COMMANDS = (
    "mem summary --limit 3",
    "vmtool -a getInstances -c __main__ Box -n 2",
    "vmtool -a referenceAnalyze -c __main__ Box -n 1",
    "watch __main__ work -n 3",
    "trace __main__ work -n 2",
    "monitor __main__ work -c 1 -n 1",
    "stack __main__ work -n 2",
    "tt -t __main__ work -n 2",
    "stack -a",
    "thread -b",
    # the program's own patched API, run in our thread by the person: the library makes a hub there
    "console -c \"__import__('time').sleep(0.01)\"",
    "console -c \"__import__('time').sleep(0.01)\"",
)


def _descriptors(pid: int) -> collections.Counter[str]:
    """What the process's descriptors are, by kind (sockets and pipes by kind, not by inode)."""
    kinds: collections.Counter[str] = collections.Counter()
    base = "/proc/%d/fd" % pid
    for name in os.listdir(base):
        try:
            link = os.readlink(os.path.join(base, name))
        except FileNotFoundError:
            continue
        kinds[link.split(":[")[0] if link.startswith(("socket:", "pipe:")) else link] += 1
    return kinds


def _ticks(pid: int) -> int:
    result = cli(pid, "getglobal __main__ TICKS -e target[0]")
    assert result.returncode == 0, (result.stdout, result.stderr)
    return int(result.results[0]["value"]["v"])


def _running(pid: int) -> bool:
    """The application's greenlets run: its tick count grows."""
    first = _ticks(pid)
    return wait_until(lambda: _ticks(pid) > first, timeout=10)


def _first_argument(call: dict[str, object]) -> object:
    values = {value["expr"]: value["value"] for value in call["values"]}  # type: ignore[attr-defined]
    return values["args"]["items"][0]["v"]


@pytest.fixture(params=GREEN, ids=IDS)
def green(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    library, name, python = request.param
    yield library, green_python(library, name, python)


def test_commands_leave_no_hub_and_no_descriptor(green: tuple[str, str]) -> None:
    library, python = green
    target = start_target(python, "green_target.py", library)
    try:
        before = _descriptors(target.pid)
        for command in COMMANDS:
            result = cli(target.pid, command, timeout=120)
            assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
        assert _running(target.pid)
        assert cli(target.pid, "detach").returncode == 0
        # our socket and its connections close with the detach; the library's epoll/eventfd of a hub
        # made in our thread stayed (2 more after each heap walk)
        assert wait_until(lambda: _descriptors(target.pid) == before, timeout=10), (before, _descriptors(target.pid))
    finally:
        target.stop()


def test_what_lists_threads_and_tasks_says_greenlets_are_not_in_it(green: tuple[str, str]) -> None:
    """thread -b and stack -a see OS threads and asyncio tasks: under the patch they say that the greenlets
    (a waiter on a held lock here) are not among them, rather than "no thread is waiting"."""
    library, python = green
    target = start_target(python, "green_target.py", library)
    try:
        for command in ("thread -b", "stack -a"):
            result = cli(target.pid, command, timeout=120)
            assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
            assert result.results[0]["greenlets"] == library, result.results
            for line in result.stdout.splitlines():
                record = json.loads(line)
                assert problems(record) == [], (command, problems(record))
            text = cli(target.pid, command, "--no-color", json_output=False, timeout=120)
            assert "%s: its " % library in text.stdout and "greenlets are not" in text.stdout, text.stdout
    finally:
        cli(target.pid, "detach")
        target.stop()


def test_calls_of_ours_are_not_the_applications(green: tuple[str, str]) -> None:
    """A hooked function our thread calls is not recorded: under the patch ``threading.get_ident`` names a
    greenlet, and our threads were known by their OS ids only."""
    library, python = green
    target = start_target(python, "green_target.py", library)
    watch = None
    try:
        command = "watch __main__ rare -n 1000"  # no filter: the generic wrapper's check
        watch = subprocess.Popen(
            [sys.executable, "-m", "flight_profiler", str(target.pid), "--json", "--cmd", command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert watch.stdout is not None
        seen: list[object] = []
        while len(seen) < 2:  # the application's own rare(-2), twice: the watch records its calls
            line = watch.stdout.readline()
            assert line, watch.stderr.read() if watch.stderr else ""
            event = json.loads(line).get("result") or {}
            if event.get("kind") == "call":
                seen.append(event)
        result = cli(target.pid, "console -c \"__import__('__main__').rare(-1)\"")
        assert result.returncode == 0, (result.stdout, result.stderr)
        time.sleep(1.0)  # the application's next rare(-2) calls come in meanwhile
        watch.send_signal(signal.SIGINT)
        out, _ = watch.communicate(timeout=60)
        calls = [json.loads(line)["result"] for line in out.splitlines() if '"kind": "call"' in line]
        arguments = [_first_argument(call) for call in calls]
        assert arguments and set(arguments) == {-2}, arguments  # rare(-2), never our rare(-1)
        # a greenlet that is no threading.Thread was "Thread-<its id>"
        names = {call["thread"] for call in calls}
        expected = "greenlet Greenlet odd_one_out" if library == "gevent" else "greenlet GreenThread"
        assert names == {expected}, names
    finally:
        if watch is not None and watch.poll() is None:
            watch.kill()
            watch.wait()
        cli(target.pid, "detach")
        target.stop()


def test_an_application_that_arms_after_patching_runs(green: tuple[str, str]) -> None:
    """``import flight_profiler.arm`` after ``patch_all()``: the listener was a greenlet whose accept()
    stopped every greenlet (the application never printed its first line)."""
    library, python = green
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHT_PROFILER_")}
    env.update(PYTHONPATH=SRC, FLIGHT_PROFILER_ARM="1")
    target: RunningTarget = start_target(python, "green_target.py", library, "arm", env=env)
    try:
        before = _descriptors(target.pid)
        for _ in range(2):  # a detach arms again
            assert _running(target.pid)
            result = cli(target.pid, "vmtool -a getInstances -c __main__ Box -n 1", timeout=120)
            assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
            assert cli(target.pid, "detach").returncode == 0
        assert _running(target.pid)
        assert cli(target.pid, "detach").returncode == 0
        assert wait_until(lambda: _descriptors(target.pid) == before, timeout=10), (before, _descriptors(target.pid))
    finally:
        target.stop()
