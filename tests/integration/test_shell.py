"""The interactive shell in a real pseudo-terminal: prompt, completion, Ctrl-C, console, Ctrl-D."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pexpect
import pytest

from support import SHELL_PROMPT as PROMPT
from support import RunningTarget, spawn_shell, target_fixture

target = target_fixture("service_target.py", "event", newest_only=True)


@pytest.fixture
def shell(target: RunningTarget, tmp_path: object) -> Iterator[pexpect.spawn]:
    child = spawn_shell(target.pid, str(tmp_path))
    yield child
    child.close(force=True)


def test_command_error_and_history(shell: pexpect.spawn, tmp_path: object) -> None:
    shell.sendline("getglobal __main__ CONFIG")
    shell.expect_exact("'name': 'svc'")
    shell.expect_exact(PROMPT)
    shell.sendline("getglobal __main__ NOPE")
    shell.expect_exact("error: attribute 'NOPE' not found in __main__")
    shell.expect_exact(PROMPT)  # the shell goes on after an error
    shell.sendeof()
    shell.expect(pexpect.EOF)
    with open(os.path.join(str(tmp_path), ".flight_profiler_history")) as fh:
        assert "getglobal __main__ CONFIG" in fh.read()


def test_tab_completes_commands_and_target_names(shell: pexpect.spawn) -> None:
    # Each completion is awaited by the part it adds: the terminal may get the whole word redrawn or,
    # when the typed part was echoed first (a loaded machine), only the added part ("__ma", then "in__")
    shell.send("getg\t")
    shell.expect_exact("lobal")
    shell.send(" __ma\t")
    shell.expect_exact("in__")
    shell.send(" CON\t")
    shell.expect_exact("FIG")
    shell.sendline("")
    shell.expect_exact("'limits'")
    shell.expect_exact(PROMPT)


def test_ctrl_c_at_prompt_keeps_the_shell(shell: pexpect.spawn) -> None:
    shell.send("half typed")
    shell.sendintr()
    shell.expect_exact(PROMPT)
    shell.sendline("module /nope.py")
    shell.expect_exact("is not imported in the target")
    shell.sendline("quit")
    shell.expect(pexpect.EOF)


def test_console_multiline(shell: pexpect.spawn) -> None:
    shell.sendline("console")
    shell.expect_exact(">>>")
    shell.sendline("def double(x):")
    shell.expect_exact("...")
    shell.sendline("    return 2 * x")
    shell.expect_exact("...")
    shell.sendline("")
    shell.expect_exact(">>>")
    shell.sendline("print(double(21))")
    shell.expect_exact("42")
    shell.sendline("1/0")
    shell.expect_exact("ZeroDivisionError")
    shell.sendline("exit()")
    shell.expect_exact(PROMPT)


def test_a_script_on_stdin_runs_in_one_session(target: RunningTarget) -> None:
    """No terminal, commands on stdin (a runbook, an agent's batch): each answers in order, in one session."""
    from support import cli

    script = "# checks\ngetglobal __main__ CONFIG -e target['name']\n\ngetglobal __main__ NOPE\nconsole\nmodule /x.py\n"
    result = cli(target.pid, None, "--debug", input=script)
    assert result.returncode == 1, result.stdout  # one lookup failed, the rest ran
    assert [r["command"] for r in result.records] == ["getglobal", "getglobal", None, "module"]  # in order
    assert result.results[0]["value"]["v"] == "svc" and result.results[1]["path"] == "/x.py"
    assert len(result.errors) == 2 and "'NOPE' not found" in result.errors[0], result.errors
    assert "give -c CODE" in result.errors[1]
    assert result.stderr.count("attached to pid") == 1, result.stderr  # one connection for the whole script
