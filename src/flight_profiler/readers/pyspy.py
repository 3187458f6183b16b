"""Run the py-spy binary that ships in our own install (client side).

py-spy reads the target's memory from outside, so it answers even when the GIL
is stuck or injection is impossible. It is found next to our interpreter (the
wheel puts it in the same bin/ folder), whatever the user's PATH says.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
from typing import Any

from ..errors import TargetError

DUMP_TIMEOUT = 20.0


def executable() -> str:
    candidates = [
        os.path.join(os.path.dirname(sys.executable), "py-spy"),
        os.path.join(sysconfig.get_path("scripts"), "py-spy"),
    ]
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("py-spy")
    if found:
        return found
    raise TargetError("py-spy is missing from this install; reinstall flight_profiler (it depends on py-spy)")


def dump(pid: int, native: bool = False) -> list[dict[str, Any]]:
    """All threads' stacks as py-spy's JSON (innermost frame first)."""
    import subprocess  # only commands that read from outside pay for it

    argv = [executable(), "dump", "--pid", str(pid), "--json"]
    if native:
        argv.append("--native")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=DUMP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise TargetError("py-spy did not answer within %.0f s" % DUMP_TIMEOUT) from None
    if proc.returncode != 0:
        raise TargetError("cannot read the stacks of pid %d: %s" % (pid, first_error_line(proc.stderr)))
    data = json.loads(proc.stdout)
    if not isinstance(data, list):
        raise TargetError("unexpected py-spy output")
    return data


def first_error_line(stderr: str) -> str:
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith("Error:"):
            return line[len("Error:") :].strip()
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[0] if lines else "py-spy failed"
