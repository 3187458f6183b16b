"""The interactive shell's loop and console in process: prompt_toolkit's session is replaced by a stand-in
that types a script of lines (and Ctrl-C / Ctrl-D); the runner records what it is asked to run."""

from __future__ import annotations

import os
import stat
from types import SimpleNamespace
from typing import Any

import pytest
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.renderer import CPR_Support

from flight_profiler.cli import shell
from flight_profiler.cli.runner import Detached
from flight_profiler.errors import FlightProfilerError
from flight_profiler.mcp.executor import Collector


class Typed:
    """A PromptSession that answers each prompt with the next scripted item (an exception is raised)."""

    script: list[Any] = []
    prompts: list[str] = []
    sessions: list[Typed] = []

    cpr = CPR_Support.UNKNOWN  # the terminal's answer to the cursor position request, as the prompts end

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.app = SimpleNamespace(renderer=SimpleNamespace(cpr_support=CPR_Support.UNKNOWN))
        Typed.sessions.append(self)

    def prompt(self, message: str) -> str:
        if self.app.renderer.cpr_support == CPR_Support.UNKNOWN:
            self.app.renderer.cpr_support = Typed.cpr
        Typed.prompts.append(message)
        if not Typed.script:
            raise EOFError
        item = Typed.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return str(item)


class Recorder:
    """What the shell needs of a Runner."""

    def __init__(self, alive: bool = True) -> None:
        self.pid = 4242
        self.output = Collector()
        self.lines: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.lost: str | None = None
        self.alive = alive
        self.closed = False
        self.on_line: dict[str, BaseException | str] = {}
        self.reattach_error: BaseException | None = None

    def execute(self, line: str) -> bool:
        self.lines.append(line)
        effect = self.on_line.get(line.split()[0] if line.split() else "")
        if isinstance(effect, BaseException):
            raise effect
        if isinstance(effect, str):
            self.lost = effect
        return True

    def run_request(self, spec: Any, request: dict[str, Any]) -> None:
        self.requests.append(request)
        if "boom" in request["source"]:
            raise FlightProfilerError("the agent went away")

    def target_alive(self) -> bool:
        return self.alive

    def reattach(self) -> None:
        if self.reattach_error is not None:
            raise self.reattach_error
        self.lost = None

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def typed(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setattr(shell, "PromptSession", Typed)
    monkeypatch.setattr(shell, "HISTORY", str(tmp_path / "history"))
    Typed.script, Typed.prompts, Typed.sessions, Typed.cpr = [], [], [], CPR_Support.UNKNOWN


def test_lines_run_until_quit_and_ctrl_c_at_the_prompt_is_ignored() -> None:
    runner = Recorder()
    Typed.script = ["stack", KeyboardInterrupt(), "", "getglobal m x", "quit", "never"]
    assert shell.run_shell(runner) == 0  # type: ignore[arg-type]
    assert runner.lines == ["stack", "", "getglobal m x"] and runner.closed
    assert Typed.script == ["never"]


@pytest.mark.parametrize(
    ("answer", "after"),
    [
        (CPR_Support.UNKNOWN, CPR_Support.NOT_SUPPORTED),  # no answer in a whole prompt: not asked again
        (CPR_Support.SUPPORTED, CPR_Support.SUPPORTED),
        (CPR_Support.NOT_SUPPORTED, CPR_Support.NOT_SUPPORTED),
    ],
)
def test_a_terminal_that_never_answers_the_cursor_position_request_is_not_asked_again(
    answer: CPR_Support, after: CPR_Support
) -> None:
    """prompt_toolkit waited up to 1 s for that answer as every prompt ended: a program typing through a
    pseudo-terminal (an AI agent, pexpect) paid 1 s per command (the shell tests' commands took 1.0 s)."""
    Typed.cpr = answer
    Typed.script = ["stack", KeyboardInterrupt(), "quit"]
    assert shell.run_shell(Recorder()) == 0  # type: ignore[arg-type]
    assert [session.app.renderer.cpr_support for session in Typed.sessions] == [after]


def test_ctrl_c_during_a_command_and_detach() -> None:
    runner = Recorder()
    runner.on_line = {"watch": KeyboardInterrupt(), "detach": Detached()}
    Typed.script = ["watch m f", "detach", "stack"]
    assert shell.run_shell(runner) == 0  # type: ignore[arg-type]
    assert runner.output.notes == ["interrupted"] and runner.lines == ["watch m f", "detach"]


@pytest.mark.parametrize(
    ("alive", "answer", "error", "status", "ran"),
    [
        (True, "y", None, 0, ["stack", "thread"]),  # re-attached: the shell goes on
        (True, "n", None, 1, ["stack"]),
        (True, KeyboardInterrupt(), None, 1, ["stack"]),
        (False, "y", None, 1, ["stack"]),  # the target is gone: nothing is asked
        (True, "yes", FlightProfilerError("cannot attach: gone"), 1, ["stack"]),
        (True, "y", KeyboardInterrupt(), 1, ["stack"]),
    ],
)
def test_after_the_agent_went_away_the_shell_offers_to_reattach(
    alive: bool, answer: Any, error: BaseException | None, status: int, ran: list[str]
) -> None:
    runner = Recorder(alive=alive)
    runner.on_line = {"stack": "the agent was detached by another client"}
    runner.reattach_error = error
    Typed.script = ["stack", answer, "thread"]
    assert shell.run_shell(runner) == status  # type: ignore[arg-type]
    assert runner.lines == ran
    asked = [prompt for prompt in Typed.prompts if prompt.startswith("re-attach")]
    assert asked == ([] if not alive else ["re-attach to pid 4242? [y/N] "])
    if status == 0:
        assert runner.output.notes == ["attached to pid 4242 again"]
    if isinstance(error, FlightProfilerError):
        assert runner.output.errors == ["cannot attach: gone"]


def test_console_collects_lines_until_a_statement_is_complete() -> None:
    """A block goes to the target at the empty line after it, as in Python's REPL (its first body line
    alone is a complete "exec" source: sent there, the next body line was an IndentationError)."""
    runner = Recorder()
    Typed.script = [
        "console",
        "x = 1",
        "def f():",
        "    y = x",
        "    return y",
        "",
        "if (",
        KeyboardInterrupt(),  # drops the unfinished statement
        "1 +* 2",  # a syntax error is the target's to report
        "exit()",
        "stack",
    ]
    assert shell.run_shell(runner) == 0  # type: ignore[arg-type]
    assert [request["source"] for request in runner.requests] == [
        "x = 1",
        "def f():\n    y = x\n    return y\n",
        "1 +* 2",
    ]
    assert runner.lines == ["stack"]
    assert Typed.prompts[:6] == ["flight_profiler> ", ">>> ", ">>> ", "... ", "... ", "... "]


def test_console_reports_errors_and_returns_when_the_agent_is_lost() -> None:
    runner = Recorder()
    Typed.script = ["boom()", "x"]
    shell.run_console(runner)  # type: ignore[arg-type]
    assert runner.output.errors == ["the agent went away"]
    assert len(runner.requests) == 2  # still attached: the console goes on until Ctrl-D
    runner = Recorder()
    runner.lost = "pid 4242 exited"
    Typed.script = ["boom()", "x"]
    shell.run_console(runner)  # type: ignore[arg-type]
    assert len(runner.requests) == 1 and Typed.script == ["x"]


def test_history_is_private(tmp_path: Any) -> None:
    os.chmod(str(tmp_path), 0o700)
    path = str(tmp_path / "h")
    assert isinstance(shell.private_history(path), shell.HeldFileHistory)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o644)
    shell.private_history(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.symlink(path, str(tmp_path / "link"))
    assert isinstance(shell.private_history(str(tmp_path / "link")), InMemoryHistory)
    os.link(path, str(tmp_path / "hard"))  # a file with another name (a hard link to someone's file)
    assert isinstance(shell.private_history(path), InMemoryHistory)


def test_history_in_a_directory_others_may_write_is_kept_in_memory(tmp_path: Any) -> None:
    os.chmod(str(tmp_path), 0o777)
    assert isinstance(shell.private_history(str(tmp_path / "h")), InMemoryHistory)
    assert not os.path.exists(str(tmp_path / "h"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory to another user")
def test_root_keeps_no_history_in_another_users_directory(tmp_path: Any) -> None:
    """sudo with the user's HOME: root wrote the history where that user can swap it for a link."""
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chown(str(home), 65534, 65534)
    assert isinstance(shell.private_history(str(home / ".flight_profiler_history")), InMemoryHistory)
    assert os.listdir(str(home)) == []


def test_history_is_written_and_read_through_its_descriptor_only(tmp_path: Any) -> None:
    """A swap of the name for a link after the open leaves the linked file untouched."""
    os.chmod(str(tmp_path), 0o700)
    path, victim = str(tmp_path / "h"), str(tmp_path / "victim")
    with open(victim, "w") as fh:
        fh.write("precious\n")
    with open(path, "w") as fh:
        fh.write("\n# earlier\n+stack -a\n\n# later\n+watch m f\n+  -n 2\n")
    history = shell.private_history(path)
    assert list(history.load_history_strings()) == ["watch m f\n  -n 2", "stack -a"]  # newest first
    os.rename(path, path + ".old")
    os.symlink(victim, path)
    history.store_string("getglobal m x")
    with open(victim) as fh:
        assert fh.read() == "precious\n"
    with open(path + ".old") as fh:
        assert fh.read().endswith("+getglobal m x\n")


def test_tab_completes_command_names_and_options_through_prompt_toolkit() -> None:
    completer = shell.CommandCompleter(Recorder())  # type: ignore[arg-type]
    names = [c.text for c in completer.get_completions(Document("wa"), None)]  # type: ignore[arg-type]
    assert names == ["watch"]
    options = [c.text for c in completer.get_completions(Document("watch --b"), None)]  # type: ignore[arg-type]
    assert options == ["--budget-ms"]
    assert [c.start_position for c in completer.get_completions(Document("watch --b"), None)] == [-3]  # type: ignore[arg-type]
    assert list(completer.get_completions(Document("nosuch "), None)) == []  # type: ignore[arg-type]
    assert shell.quote(["a b", "c"]) == "'a b' c"
