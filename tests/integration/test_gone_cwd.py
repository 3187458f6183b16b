"""The user's shell sits in a directory that no longer exists (a release directory a deploy removed):
every command that reads from outside said "stack failed: [Errno 2] No such file or directory", and
``module x.py`` the same. Now they run, and a relative path that cannot be resolved is a one-line
usage error that says why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

from instr_helpers import instr_target_fixture
from support import RunningTarget

target = instr_target_fixture()


def _in_a_removed_directory(pid: int, command: str) -> subprocess.CompletedProcess[str]:
    gone = tempfile.mkdtemp(prefix="fp-gone-")
    script = 'cd "$1" && rmdir "$1" && shift && exec "$@"'
    argv = [sys.executable, "-m", "flight_profiler", str(pid), "--cmd", command, "--json"]
    return subprocess.run(
        ["sh", "-c", script, "sh", gone, *argv], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.any_interpreter
def test_commands_run_where_the_current_directory_was_removed(target: RunningTarget) -> None:
    for command in ("stack", "thread -n 1", "module /nonexistent/x.py", "getglobal __main__ __name__"):
        done = _in_a_removed_directory(target.pid, command)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    for command in ("module x.py", "stack -f out.txt", "perf -d 1 -f out.svg"):
        done = _in_a_removed_directory(target.pid, command)
        error = json.loads(done.stdout.splitlines()[-1])["error"] if done.stdout else done.stderr
        assert done.returncode != 0 and "the current directory no longer exists" in error, (command, error)
        assert "Traceback" not in done.stderr
    assert os.path.exists("/proc/%d" % target.pid)
