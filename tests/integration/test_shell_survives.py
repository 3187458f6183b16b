"""The shell outlives its agent (real pty, real targets): target killed, agent detached by
another client, Tab completion in that state, bad numbers; one line each, never a traceback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pexpect
import pytest

from interpreters import find_interpreters
from support import SHELL_PROMPT as PROMPT
from support import RunningTarget, cli, spawn_shell, start_target

INTERPRETERS = find_interpreters()


def _running(python: str) -> Iterator[RunningTarget]:
    running = start_target(python, "service_target.py", "event")
    yield running
    if running.proc.poll() is None:
        cli(running.pid, "detach")
    running.stop()


def _shell(target: RunningTarget, tmp_path: object) -> Iterator[pexpect.spawn]:
    child = spawn_shell(target.pid, str(tmp_path), log=os.path.join(str(tmp_path), "shell.log"))
    child.sendline("getglobal __main__ CONFIG")  # attach
    child.expect_exact("'name': 'svc'")
    child.expect_exact(PROMPT)
    yield child
    child.close(force=True)
    child.logfile_read.close()


# the target's end and another client's detach, on every interpreter (the agent's side of a detach
# is the target's); bad numbers are the client's alone: the newest target is enough
@pytest.fixture(params=INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def target(request: pytest.FixtureRequest) -> Iterator[RunningTarget]:
    yield from _running(request.param[1])


@pytest.fixture
def shell(target: RunningTarget, tmp_path: object) -> Iterator[pexpect.spawn]:
    yield from _shell(target, tmp_path)


@pytest.fixture
def newest() -> Iterator[RunningTarget]:
    yield from _running(INTERPRETERS[-1][1])


@pytest.fixture
def newest_shell(newest: RunningTarget, tmp_path: object) -> Iterator[pexpect.spawn]:
    yield from _shell(newest, tmp_path)


def transcript(tmp_path: object) -> str:
    with open(os.path.join(str(tmp_path), "shell.log")) as fh:
        return fh.read()


def ended(shell: pexpect.spawn) -> int:
    shell.expect(pexpect.EOF)
    shell.close()
    return int(shell.exitstatus if shell.exitstatus is not None else -1)


def test_target_killed_mid_session(shell: pexpect.spawn, target: RunningTarget, tmp_path: object) -> None:
    target.stop()  # SIGKILL, reaped
    shell.send("getglobal __ma\t")  # completion with a dead agent: nothing offered, nothing printed
    shell.sendcontrol("u")
    shell.sendline("getglobal __main__ CONFIG")
    shell.expect_exact("error: pid %d exited" % target.pid)
    assert ended(shell) == 1
    log = transcript(tmp_path)
    assert "Traceback" not in log and "Press ENTER" not in log and "re-attach" not in log


def test_detached_by_another_client_then_reattach(
    shell: pexpect.spawn, target: RunningTarget, tmp_path: object
) -> None:
    assert cli(target.pid, "detach").returncode == 0
    shell.send("getglobal __main__ CON\t")  # the old connection is dead: no completion, no traceback
    shell.sendcontrol("u")
    shell.sendline("getglobal __main__ CONFIG")
    shell.expect_exact("error: the agent was detached by another client")
    shell.expect_exact("re-attach to pid %d? [y/N]" % target.pid)
    shell.send("getglobal __ma\t")  # completion while asked: offers nothing, never re-attaches
    shell.sendcontrol("u")
    shell.sendline("y")
    shell.expect_exact("attached to pid %d again" % target.pid)
    shell.expect_exact(PROMPT)
    shell.sendline("getglobal __main__ CONFIG")
    shell.expect_exact("'limits'")
    shell.expect_exact(PROMPT)
    shell.sendline("quit")
    assert ended(shell) == 0
    log = transcript(tmp_path)
    assert "Traceback" not in log and "Press ENTER" not in log


def test_detached_by_another_client_declined(shell: pexpect.spawn, target: RunningTarget, tmp_path: object) -> None:
    assert cli(target.pid, "detach").returncode == 0
    shell.sendline("watch __main__ Widget __init__ -n 1")
    shell.expect_exact("error: the agent was detached by another client")
    shell.expect_exact("re-attach to pid %d? [y/N]" % target.pid)
    shell.sendline("")
    assert ended(shell) == 1
    assert "Traceback" not in transcript(tmp_path)


def test_bad_numbers_are_one_line_and_the_shell_goes_on(newest_shell: pexpect.spawn, tmp_path: object) -> None:
    shell = newest_shell
    shell.sendline("trace __main__ spin -et 1e309")
    shell.expect_exact("error: trace: -et must be a finite number, got '1e309'")
    shell.expect_exact(PROMPT)
    shell.sendline("mem diff --interval 0")
    shell.expect_exact("error: mem: -i must be > 0 and <= 3600, got '0'")
    shell.expect_exact(PROMPT)
    shell.sendline("getglobal __main__ CONFIG -x 2")
    shell.expect_exact("'deep'")
    shell.expect_exact(PROMPT)
    assert "Traceback" not in transcript(tmp_path)


def test_bad_numbers_with_cmd_exit_non_zero(newest: RunningTarget) -> None:
    result = cli(newest.pid, "watch __main__ spin --rate nan")
    assert result.returncode != 0 and result.errors == [
        "watch: --rate must be a finite number, got 'nan' (see 'help watch')"
    ]
