"""The reader of the CLI's output goes away mid-command (``--cmd "watch ..." | head -1``): the CLI stops
quietly with SIGPIPE's status (141), as other tools do, and the target is left as it was. It said
"internal error: BrokenPipeError ... (a bug in flight_profiler)" with --json, and exited 1 ("failed")
in text."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from instr_helpers import instr_target_fixture, state
from support import RunningTarget, wait_until

target = instr_target_fixture()


@pytest.mark.any_interpreter
@pytest.mark.parametrize("group", [False, True], ids=["pid", "group"])
@pytest.mark.parametrize("mode", ["--json", "--no-color"])
def test_a_closed_output_ends_the_command_quietly_and_takes_its_hooks_out(
    target: RunningTarget, mode: str, group: bool
) -> None:
    """``group``: the same over a group (-p): a member's result, or its error line, met the closed output
    on the member's thread, whose traceback was printed."""
    read, write = os.pipe()
    which = ["-p", str(target.pid)] if group else [str(target.pid)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "flight_profiler", *which, "--cmd", "watch __main__ hot -n 100000", mode],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write)
    with os.fdopen(read, "rb") as reader:
        first = reader.readline()  # the start line: the hook is in
    assert b'"kind": "start"' in first or first.startswith(b"watching"), (first, proc.communicate(timeout=30))
    _, errors = proc.communicate(timeout=60)  # its next write finds the pipe closed
    assert proc.returncode == 141 and errors == "", (proc.returncode, errors)
    assert wait_until(
        lambda: state(target.pid)["installed"] == [] and state(target.pid)["hooks_gone"] == [], timeout=30
    )
