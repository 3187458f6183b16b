"""CPython interpreters available on this machine for target processes.

pyenv builds (shared libpython, symbols), Debian's static stripped non-PIE
python3.11, and private 3.14 and 3.15 builds (static, stripped) provided by
shared/tools/python3.14 and shared/tools/python3.15.
Missing ones are simply left out, so tests parametrized over them shrink instead of
failing on machines without them.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import os
import subprocess
from typing import Iterator, List, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)


def _pyenv_root() -> str:
    return os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")


def _tool(version: str) -> str:
    for candidate in (
        os.environ.get("FP_PY%s_TOOL" % version.replace(".", ""), ""),
        os.path.join(os.path.dirname(_REPO), "shared", "tools", "python" + version),  # CI: shared/ beside the clone
        "/work/shared/tools/python" + version,
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return ""


@contextlib.contextmanager
def _tools_lock() -> Iterator[None]:
    directory = os.path.join(os.path.expanduser("~"), ".cache")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "flight_profiler-test-pythons.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _private_python(version: str) -> str:
    """The interpreter a shared/tools/pythonX.Y script provides (it prints the path)."""
    tool = _tool(version)
    if not tool:
        return ""
    try:
        # The first use downloads and unpacks the interpreter (about a minute); test workers running
        # side by side (xdist) take turns, or one would unpack into the folder another is removing.
        with _tools_lock():
            proc = subprocess.run([tool], capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    path = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return path if proc.returncode == 0 and os.access(path, os.X_OK) else ""


# Every interpreter id the suite knows how to find, oldest first (the session-start preflight names
# the ones missing here).
KNOWN_IDS = ("3.8", "3.9", "3.10", "3.11", "deb3.11", "3.12", "3.13", "3.14", "3.15")


@functools.lru_cache(maxsize=1)
def find_interpreters() -> List[Tuple[str, str]]:
    """(id, path) of every interpreter found, oldest first (newest last); cached.

    FLIGHT_PROFILER_TEST_PYTHONS=3.8,3.14 (ids) narrows the list.
    """
    found = all_interpreters()
    wanted = os.environ.get("FLIGHT_PROFILER_TEST_PYTHONS")
    if wanted:
        found = [entry for entry in found if entry[0] in wanted.split(",")]
    return found


# The ``any_interpreter`` tier (tests/conftest.py): a test whose behaviour does not depend on the target's
# interpreter (the client's parsing, rendering and error messages, option variants of an agent path another
# test already proves on every interpreter) runs on the oldest and the newest of find_interpreters() only.
# Those two span the range the agent's Python must run on (3.8 syntax and semantics; the newest compiler,
# frames and PEP 768); what else differs between interpreters (static and stripped builds, symbols, the
# injection path) is the attach's business, which the unmarked tests prove on every one.
# FP_SPOT_PYTHONS=all runs the tier on every interpreter; FP_SPOT_PYTHONS=3.8,deb3.11 on those ids.
SPOT_ENV = "FP_SPOT_PYTHONS"


def spot_ids() -> List[str]:
    """Ids of the interpreters an ``any_interpreter`` test runs on (among those selected)."""
    selected = [name for name, _ in find_interpreters()]
    wanted = os.environ.get(SPOT_ENV, "")
    if wanted == "all":
        return selected
    if wanted:
        return [name for name in selected if name in wanted.split(",")]
    return sorted({selected[0], selected[-1]}, key=selected.index) if selected else []


def spot_interpreters() -> List[Tuple[str, str]]:
    """(id, path) of those interpreters: for a module fixture that only the tier's tests use."""
    spots = spot_ids()
    return [entry for entry in find_interpreters() if entry[0] in spots]


@functools.lru_cache(maxsize=1)
def all_interpreters() -> List[Tuple[str, str]]:
    """(id, path) of every interpreter on this machine, whatever FLIGHT_PROFILER_TEST_PYTHONS says."""
    found: List[Tuple[str, str]] = []
    for minor in range(8, 14):
        versions = sorted(glob.glob(os.path.join(_pyenv_root(), "versions", "3.%d.*" % minor)))
        paths = [os.path.join(v, "bin", "python") for v in versions if not v.endswith("t")]
        usable = [path for path in paths if os.access(path, os.X_OK)]
        if usable:
            found.append(("3.%d" % minor, usable[-1]))
        if minor == 11 and os.access("/usr/bin/python3.11", os.X_OK):
            # Next to its pyenv sibling, so that found[0] is the oldest and
            # found[-1] the newest interpreter.
            found.append(("deb3.11", "/usr/bin/python3.11"))
    for version in ("3.14", "3.15"):
        path = _private_python(version)
        if path:
            found.append((version, path))
    return found
