"""A process forked from one whose agent ran (a prefork master that was ever attached).

The child inherits the agent's module state (its server, sessions, jobs, hooks) but none of its
threads. Attaching to the child used to find that state, take it for a running agent, and wait
twice ``--timeout`` for a socket that never came; and the hooks active at the fork stayed in the
child with nobody to remove them. The bootstrap now sees that the agent's state belongs to another
process: it undoes what that copy left in this one (its jobs' cleanups, its detach callbacks),
closes the sockets it inherited without touching the parent's, and loads a fresh agent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Iterator

import pytest

from interpreters import find_interpreters
from support import RunningTarget, cli, served, wait_until

INTERPRETERS = find_interpreters()
# the bootstrap, loader and server code the fork path runs is the same on every interpreter (other tests
# cover each interpreter's load): the oldest and the newest, FP_SPOT_PYTHONS=all for every one
pytestmark = pytest.mark.any_interpreter


@pytest.fixture(params=INTERPRETERS, ids=[name for name, _ in INTERPRETERS])
def target(request: pytest.FixtureRequest) -> Iterator[RunningTarget]:
    with served(request.param[1], "fork_target.py", healthy=True) as running:
        yield running


def _fork(target: RunningTarget) -> int:
    os.kill(target.pid, signal.SIGUSR2)
    assert target.proc.stdout is not None
    line = target.proc.stdout.readline()
    assert line.startswith("forked "), (line, target.why())
    return int(line.split()[1])


def _hooked(pid: int, *options: str) -> bool:
    result = cli(pid, "getglobal __main__ work -e target.__code__.co_filename", *options, timeout=60)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return bool(result.results[0]["value"]["v"] == "<flight_profiler hook>")


def _watching(
    pid: int, command: str = "watch __main__ work -n 100000", shown: str = '"kind": "call"'
) -> subprocess.Popen[str]:
    """``command`` on ``pid``, running until killed; returns once it has printed ``shown``."""
    watch = subprocess.Popen(
        [sys.executable, "-m", "flight_profiler", str(pid), "--json", "--cmd", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = watch.stdout.readline()
        if shown in line:
            return watch
        if not line:
            break
    watch.kill()
    raise AssertionError("%s printed no %s: %s" % (command, shown, watch.communicate()[1]))


def test_a_child_forked_while_a_watch_ran_is_attachable_and_gets_its_hook_removed(target: RunningTarget) -> None:
    watch = _watching(target.pid)
    child = 0
    try:
        child = _fork(target)
        # the first attach to the child is what used to fail (after twice --timeout); it replaces the
        # copy of the agent the child inherited, and undoes that copy's watch
        assert not _hooked(child, "--timeout", "10"), "the child's work() still runs the hook it inherited"
        result = cli(child, "detach", timeout=60)
        assert result.returncode == 0, result.stderr
        # the parent's agent, its sockets and its watch were not touched by what the child did
        assert _shows_calls_after(watch, time.time()), watch.communicate()[1]
        assert _hooked(target.pid)
    finally:
        watch.kill()
        watch.wait(10)
        if child:
            os.kill(child, signal.SIGKILL)
            wait_until(lambda: not os.path.exists("/proc/%d/status" % child) or _zombie(child), timeout=10)
    assert wait_until(lambda: not _hooked(target.pid), timeout=30), "the parent's watch was not removed"


def test_a_logger_level_changed_at_the_fork_is_put_back_by_the_childs_first_attach(target: RunningTarget) -> None:
    """The parent's ``logger --for`` job reverts the level when it ends; the child has no such job thread."""
    level = "getglobal __main__ LOG -e target.level"
    changed = _watching(target.pid, "logger --name forktest --level DEBUG --for 600", '"kind": "changed"')
    child = 0
    try:
        child = _fork(target)
        result = cli(child, level, "--timeout", "10", timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.results[0]["value"]["v"] == 0, "the child kept the level its parent's logger job set"
        assert cli(child, "detach", timeout=60).returncode == 0
        assert cli(target.pid, level).results[0]["value"]["v"] == 10, "the parent's change was undone"
    finally:
        changed.kill()
        changed.wait(10)
        if child:
            os.kill(child, signal.SIGKILL)
    assert wait_until(lambda: cli(target.pid, level).results[0]["value"]["v"] == 0, timeout=30)


@pytest.mark.parametrize("held", ["held-guard", "held-tt"])
def test_a_child_forked_while_a_lock_of_ours_was_held_is_attachable(held: str) -> None:
    """Locks of ours held at the fork by a thread the child does not have: the bootstrap's loader guard
    (replaced), and tt's record store (the undoing of the parent's agent waits for it, bounded)."""
    python = INTERPRETERS[-1][1]
    with served(python, "fork_target.py", held, healthy=True) as target:
        assert cli(target.pid, "getglobal __main__ COUNT").returncode == 0  # the guard exists from now on
        assert cli(target.pid, "tt -l").returncode == 0  # tt's store exists, and its detach callback
        child = _fork(target)
        try:
            result = cli(child, "getglobal __main__ COUNT", "--timeout", "10", timeout=60)
            assert result.returncode == 0, result.stderr
            assert cli(child, "detach", timeout=60).returncode == 0
        finally:
            os.kill(child, signal.SIGKILL)


def _shows_calls_after(watch: subprocess.Popen[str], since: float) -> bool:
    """The watch still streams: a call made after ``since`` reaches its client."""
    assert watch.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = watch.stdout.readline()
        if not line:
            return False
        record = json.loads(line)["result"]
        if record.get("kind") == "call" and record["time"] > since:
            return True
    return False


def _zombie(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
