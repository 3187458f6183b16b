"""``torch``: profile a CPU model's forward pass end to end, and the CUDA-only commands without CUDA.

torch lives in a venv of its own (bench/.venvs/torch311, Python 3.11), made by
tests/targets/ensure_torch_env.sh the first time (25-45 s, the torch_python fixture in
tests/conftest.py); the tests skip
when it cannot be made (no pyenv 3.11, no torch wheel reachable) or takes over
3 minutes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from interpreters import find_interpreters
from support import CliResult, RunningTarget, cli, start_target, wait_until


@pytest.fixture(scope="module")
def target(torch_python: str) -> Iterator[RunningTarget]:
    running = start_target(torch_python, "prof_torch_target.py", timeout=120)
    yield running
    cli(running.pid, "detach")
    assert running.healthy()
    running.stop()


def cli_in(cwd: str, pid: int, command: str) -> CliResult:
    """The CLI run from ``cwd``, as a user in that directory would."""
    argv = [sys.executable, "-m", "flight_profiler", str(pid), "--cmd", command, "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd, check=False)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def code_file(target: RunningTarget, function: str) -> str:
    """The file of the code object the function runs now: ours while hooked, the target's otherwise."""
    result = cli(target.pid, 'console -c "import __main__; __main__.%s.__code__.co_filename"' % function)
    assert result.returncode == 0, result.stdout + result.stderr
    return str(eval(result.results[0]["value"]))  # the repr of a str


def test_profile_the_next_forward_pass(target: RunningTarget, tmp_path: object) -> None:
    result = cli_in(str(tmp_path), target.pid, "torch profile __main__ TinyNet forward -f trace.json")
    assert result.returncode == 0, result.stdout + result.stderr
    waiting, done = result.results
    assert waiting["action"] == "waiting" and waiting["target"] == "__main__.TinyNet.forward"
    path = os.path.join(str(tmp_path), "trace.json")  # resolved against the user's working directory
    assert done["action"] == "profile" and done["path"] == path and done["activities"] == ["cpu"]
    assert done["call_ms"] > 0 and done["raised"] is None
    with open(path) as fh:
        trace = json.load(fh)
    names = {event.get("name") for event in trace["traceEvents"]}
    assert {"aten::linear", "aten::relu"} <= names, sorted(n for n in names if n)[:40]
    assert code_file(target, "TinyNet.forward").endswith("prof_torch_target.py")  # unhooked after one call


def test_cancel_while_waiting_removes_the_hook(target: RunningTarget, tmp_path: object) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flight_profiler", str(target.pid), "--cmd", "torch profile __main__ never_called"],
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert wait_until(lambda: code_file(target, "never_called") == "<flight_profiler hook>")  # hooked: waiting
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert "cancelled" in err, (out, err)
    assert code_file(target, "never_called").endswith("prof_torch_target.py")
    assert not os.path.exists(os.path.join(str(tmp_path), "trace.json"))


def test_wait_gives_up(target: RunningTarget) -> None:
    result = cli(target.pid, "torch profile __main__ never_called --wait 1 -f /tmp/never.json")
    assert result.returncode != 0 and "was not called within 1 s" in result.errors[0]


@pytest.mark.parametrize("command", ["torch memory -s", "torch memory -r __main__ TinyNet forward"])
def test_memory_without_cuda_is_a_clear_error(target: RunningTarget, command: str, tmp_path: object) -> None:
    result = cli_in(str(tmp_path), target.pid, command)
    assert result.returncode != 0 and len(result.errors) == 1
    assert "needs CUDA" in result.errors[0] and "nothing was changed" in result.errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert os.listdir(str(tmp_path)) == []
    assert code_file(target, "TinyNet.forward").endswith("prof_torch_target.py")


def test_target_without_torch() -> None:
    running = start_target(find_interpreters()[-1][1], "prof_burn_target.py")
    try:
        result = cli(running.pid, "torch profile __main__ burn_cpu_hotspot -f /tmp/x.json")
        assert result.returncode != 0 and "torch is not imported in the target" in result.errors[0]
        assert running.healthy()
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("torch profile __main__", "needs: module [class] method"),
        ("torch memory", "exactly one of -s"),
        ("torch memory -s -r a b", "exactly one of -s"),
        ("torch profile a b -s", "belong to torch memory"),
        ("torch profile a b --wait -1", "--wait must not be negative"),
        ("torch cook", "invalid choice"),
    ],
)
def test_bad_input_is_one_line(command: str, message: str) -> None:
    result = cli(os.getpid(), command)
    assert result.returncode != 0
    assert len(result.errors) == 1 and message in result.errors[0], result.stdout
    assert "Traceback" not in result.stdout + result.stderr
