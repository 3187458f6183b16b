"""``cli.main``: exit statuses as the attach skill documents them, and one line instead of a traceback."""

from __future__ import annotations

import gc
import io
import json
import sys
from typing import Any

import pytest

from flight_profiler.cli import main as cli_main
from flight_profiler.cli.runner import Detached
from flight_profiler.errors import TargetError, UsageError


class Once:
    """What ``run_once`` needs of a Runner: execute (scripted), interrupted, close."""

    def __init__(self, effect: Any = True) -> None:
        self.effect = effect
        self.lines: list[str] = []
        self.interrupted = False
        self.closed = False

    def execute(self, line: str) -> bool:
        self.lines.append(line)
        if isinstance(self.effect, BaseException):
            raise self.effect
        if self.effect == "interrupted":
            self.interrupted = True
            return True
        return bool(self.effect)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("effect", "status"),
    [(True, 0), (False, 1), (Detached(), 0), (KeyboardInterrupt(), 130), ("interrupted", 130)],
)
def test_run_once_exit_statuses(effect: Any, status: int) -> None:
    runner = Once(effect)
    assert cli_main.run_once(runner, "stack") == status  # type: ignore[arg-type]
    assert runner.closed and runner.lines == ["stack"]


def test_quit_runs_nothing() -> None:
    runner = Once()
    assert cli_main.run_once(runner, " quit ") == 0  # type: ignore[arg-type]
    assert cli_main.run_once(runner, "exit now") == 0  # type: ignore[arg-type]  # as the shell: was "unknown command"
    assert runner.lines == []


def test_console_with_piped_input_runs_that_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("x = 'a b'\nprint(x)\n"))
    runner = Once()
    cli_main.run_once(runner, "console")  # type: ignore[arg-type]
    assert runner.lines == ["console -c 'x = '\"'\"'a b'\"'\"'\nprint(x)\n'"]


def test_the_shell_needs_a_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal, and no command on it either
    assert cli_main.main(["4242"]) == 2
    assert "no terminal for the shell and no command on stdin" in capsys.readouterr().err
    assert cli_main.main(["4242", "--json"]) == 2


class Script(Once):
    """A Runner for run_batch: ``failing`` lines fail, ``detach`` raises Detached(confirmed)."""

    def __init__(self, failing: tuple[str, ...] = (), confirmed: bool = True) -> None:
        super().__init__()
        self.failing, self.confirmed = failing, confirmed
        self.output = Recorder()

    def execute(self, line: str) -> bool:
        self.lines.append(line)
        if line == "detach":
            raise Detached(self.confirmed)
        return line not in self.failing


class Recorder:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, command: object, message: str) -> None:
        self.errors.append(message)


def test_a_script_on_stdin_runs_every_command_in_one_session() -> None:
    runner = Script(failing=("nosuch",))
    script = "# a runbook\n  stack -a  \n\nnosuch\nconsole\nconsole -c 1\ngetglobal m x\nexit\nstack\n"
    assert cli_main.run_batch(runner, io.StringIO(script), runner.output) == 1  # type: ignore[arg-type]  # one failed
    assert runner.lines == ["stack -a", "nosuch", "console -c 1", "getglobal m x"]  # exit ended it
    assert runner.output.errors == ["console reads its input from the terminal: in a script, give -c CODE"]
    assert runner.closed


@pytest.mark.parametrize(("confirmed", "status"), [(True, 0), (False, 1)])
def test_a_detach_ends_the_script(confirmed: bool, status: int) -> None:
    runner = Script(confirmed=confirmed)
    assert cli_main.run_batch(runner, io.StringIO("stack\ndetach\nstack\n"), runner.output) == status  # type: ignore[arg-type]
    assert runner.lines == ["stack", "detach"]  # nothing re-attaches after it


def test_a_line_past_the_bound_stops_the_script() -> None:
    runner = Script()
    script = "stack\n" + "x" * (cli_main.MAX_SCRIPT_LINE + 5) + "\nstack\n"
    assert cli_main.run_batch(runner, io.StringIO(script), runner.output) == 2  # type: ignore[arg-type]
    assert runner.lines == ["stack"] and "over" in runner.output.errors[0]


@pytest.mark.parametrize(("bad", "said"), [("abc", "'abc' is not a pid (or 'demo')"), ("0", "'0' is not a pid")])
def test_a_bad_pid_is_a_usage_error(bad: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main([bad, "--cmd", "stack"]) == UsageError("").exit_code
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["4242", "--timeout", "nan", "--cmd", "stack"], "--timeout must be a finite number, got 'nan'"),
        (["4242", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required: target"),
        (["4242", "--cmd"], "argument --cmd: expected one argument"),
        # ran nothing and exited 0 for any pid, one that names no process too: a script read success
        (["999999999", "--cmd", ""], 'argument --cmd: is empty: give a command, e.g. --cmd "stack"'),
        (["--all", "--cmd", " \t"], "argument --cmd: is empty"),
        (["--all", "--concurrency", "0", "--cmd", "stack"], "--concurrency must be 1..64, got '0'"),
        (["ps", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_a_bad_command_line_is_one_line(argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Not argparse's usage block and exit: one line naming the mistake, status 2, JSON with --json."""
    assert cli_main.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and said in captured.err
    assert captured.err.startswith("error: ") and "--help lists the options" in captured.err
    assert cli_main.main([*argv, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.count("\n") == 1
    assert json.loads(captured.out)["error"].startswith(said)


def _entry(monkeypatch: pytest.MonkeyPatch, raised: BaseException, argv: list[str] | None = None) -> int:
    def main() -> int:
        raise raised

    monkeypatch.setattr(cli_main, "main", main)
    monkeypatch.setattr(gc, "freeze", lambda: None)  # this process is pytest's: its objects stay collectable
    monkeypatch.setattr(sys, "argv", ["flight_profiler", *(argv or [])])
    with pytest.raises(SystemExit) as ended:
        cli_main.entry()
    return int(ended.value.code or 0)


def test_entry_turns_errors_into_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _entry(monkeypatch, TargetError("pid 5 is gone\x1b[31m")) == TargetError("").exit_code
    assert capsys.readouterr().err == "error: pid 5 is gone\\x1b[31m\n"
    assert _entry(monkeypatch, KeyboardInterrupt()) == 130
    assert _entry(monkeypatch, ZeroDivisionError("bad\nline")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: internal error: ZeroDivisionError: bad") and err.count("\n") == 1
    assert "--debug shows where" in err
    monkeypatch.setattr(sys, "argv", ["flight_profiler", "--debug"])
    with pytest.raises(ZeroDivisionError):
        _entry(monkeypatch, ZeroDivisionError("x"), ["--debug"])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from flight_profiler import __version__

    with pytest.raises(SystemExit) as exited:
        cli_main.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == "flight_profiler %s\n" % __version__
