"""A ``--cmd`` on a reused agent imports only what that command needs (issue 14: a light client).

The CLI runs as ``python -m flight_profiler`` would, with an exit handler that
prints ``sys.modules`` (``-X importtime`` misses what ``importlib.import_module``
loads). No timing is asserted here; bench/client_startup.py measures the wall time.
"""

from __future__ import annotations

import gettext
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from interpreters import find_interpreters
from support import RunningTarget, cli, start_target

# never needed to run one command against an agent that is already there
HEAVY = ("rich", "prompt_toolkit", "mcp", "pydantic", "dataclasses", "secrets", "subprocess", "ctypes")
HEAVY_OURS = (
    "flight_profiler.fleet.",
    "flight_profiler.readers.",
    "flight_profiler.attach.injector",
    "flight_profiler.attach.procfs",
    "flight_profiler.attach.bootstrap",  # bootstrap, bundle, waits: an injection's
    "flight_profiler.attach.bundle",
    "flight_profiler.attach.waits",
    "flight_profiler.render.console",
)
# nor, for a command whose result is a line of text or JSON, these: each costs every --cmd's start-up
# 0.2-3 ms of CPU (typing; socket with its IntEnums and selectors; json: _json does both ways), and
# together they were a quarter of the client's cost above a bare interpreter
LIGHT = (
    "typing",
    "socket",
    "selectors",
    "json",
    "threading",
    "signal",
    "array",
    "struct",
    "fcntl",
    "shlex",
    "math",
    "dataclasses",
    "inspect",
    "ast",
)


@pytest.fixture(scope="module")
def target() -> Iterator[RunningTarget]:
    running = start_target(find_interpreters()[-1][1], "service_target.py", "sleep")
    assert cli(running.pid, "module os").returncode == 0  # the agent is in: the runs below reuse it
    yield running
    cli(running.pid, "detach")
    running.stop()


# the client as ``python -m flight_profiler ARGS`` runs it, telling its modules at exit (importing
# nothing the client does not: what is in sys.modules at the end is the client's)
RUN_AND_TELL = """
import atexit, gc, runpy, sys
atexit.register(lambda: sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n"))
atexit.register(lambda: sys.stderr.write("FROZEN %d\\n" % gc.get_freeze_count()))
sys.argv = ["flight_profiler"] + sys.argv[1:]
runpy.run_module("flight_profiler", run_name="__main__", alter_sys=True)
"""


def imported(pid: int, *options: str, line: str = "module os", status: int = 0, said: str = "") -> set[str]:
    """The modules the client had at its exit; it must exit ``status`` with ``said`` on stderr (if given),
    else a result on stdout."""
    args = [str(pid), "--cmd", line, *options]
    proc = subprocess.run(
        [sys.executable, "-c", RUN_AND_TELL, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # not measured: a measured child imports coverage (and its dataclasses) before the client
        env={k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")},
    )
    assert proc.returncode == status, proc.stderr[-2000:]
    if said:
        assert said in proc.stderr, proc.stderr[-2000:]
    else:
        assert "imported in the target" in proc.stdout or '"result"' in proc.stdout
    told = [line for line in proc.stderr.splitlines() if line.startswith("MODULES ")]
    assert len(told) == 1, proc.stderr[-2000:]
    # what the imports made was frozen (cli/main.py's entry): the collector's last pass at exit skips it
    assert int(proc.stderr.split("FROZEN ")[1].split()[0]) > 1000
    return set(told[0].split()[1:])


@pytest.mark.parametrize("options", [("--json",), ("--no-color",)], ids=["json", "text"])
def test_a_reused_agent_command_imports_no_heavy_module(target: RunningTarget, options: tuple[str, ...]) -> None:
    modules = imported(target.pid, *options)
    assert "flight_profiler.commands.module.client" in modules  # the list is complete
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY_OURS) or m in LIGHT)
    assert heavy == []


def test_an_error_line_in_text_imports_no_rich(target: RunningTarget) -> None:
    """A failed command's one line (and every note: detach's, below) is written without rich: importing it
    for one line cost ~60 ms of CPU."""
    modules = imported(target.pid, "--no-color", line="getglobal no_such_module X", status=1, said="error: ")
    assert "flight_profiler.commands.getglobal.client" in modules
    assert sorted(m for m in modules if m.split(".")[0] == "rich" or m == "flight_profiler.render.console") == []


def test_a_detach_in_text_imports_no_rich() -> None:
    running = start_target(find_interpreters()[-1][1], "service_target.py", "sleep")
    try:
        assert cli(running.pid, "module os").returncode == 0
        modules = imported(running.pid, "--no-color", line="detach", said="detached: the agent and its hooks are gone")
        assert sorted(m for m in modules if m.split(".")[0] == "rich" or m == "flight_profiler.render.console") == []
    finally:
        running.stop()


# commands that render with rich in text; as JSON lines nothing is rendered
JSON_COMMANDS = ["getglobal __main__ __name__", "mem summary", "logger"]


@pytest.mark.parametrize("line", JSON_COMMANDS, ids=[line.split()[0] for line in JSON_COMMANDS])
def test_any_agent_command_as_json_imports_no_heavy_module(target: RunningTarget, line: str) -> None:
    modules = imported(target.pid, "--json", line=line)
    assert "flight_profiler.commands.%s.client" % line.split()[0] in modules
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY_OURS) or m in LIGHT)
    assert heavy == []


@pytest.mark.parametrize("options", [("--json",), ("--no-color",)], ids=["json", "text"])
def test_argparse_does_not_make_gettext_import_locale(target: RunningTarget, options: tuple[str, ...]) -> None:
    """Where no catalog can be found, argparse's labels are taken as they are (cli/main.py)."""
    localedir = getattr(gettext, "_default_localedir", "")
    if os.path.isdir(localedir) or "locale" in _floor():
        pytest.skip("this interpreter has %s (or imports locale at start-up): gettext looks there" % localedir)
    assert "locale" not in imported(target.pid, *options)


def _floor() -> set[str]:
    """What the interpreter imports for ``python -c pass``."""
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(proc.stdout.split())


# what a first attach (an injection) must not import: each was paid once per client that injects, and
# together they were ~20 ms of a first `--json` getglobal's ~60 ms of client CPU (dataclasses brings
# inspect, ast, dis and tokenize; typing; platform for uname; hashlib loads OpenSSL for one digest)
FIRST_ATTACH_HEAVY = ("dataclasses", "inspect", "ast", "dis", "typing", "platform", "hashlib", "_hashlib", "rich")


@pytest.mark.parametrize(
    ("name", "python"), [find_interpreters()[0], find_interpreters()[-1]], ids=["oldest", "newest"]
)
def test_a_first_attach_as_json_imports_no_heavy_module(name: str, python: str) -> None:
    """The injector, the bundle (its code compiled and kept, attach/codecache) and the agent's wait,
    without the modules only mypy needs: the injection path's imports hold to the light client's rule."""
    running = start_target(python, "service_target.py", "sleep")
    try:
        modules = imported(running.pid, "--json", line="getglobal __main__ __name__")
        assert "flight_profiler.attach.injector.session" in modules or "flight_profiler.attach.attacher" in modules
        heavy = sorted(m for m in modules if m in FIRST_ATTACH_HEAVY or m.split(".")[0] == "rich")
        assert heavy == []
    finally:
        cli(running.pid, "detach")
        running.stop()
