"""A target whose Python binary was replaced on disk since it started (an upgrade, a redeploy).

Its user, without CAP_SYS_ADMIN, cannot open ``/proc/<pid>/map_files``: the client read the C-API's
addresses from the file at the mapped path, which is the new build, and the thread sent to them
crashed the target (SIGSEGV, with Debian's python3.11 replaced by 3.14). The injector now compares
the code of the functions it will call, in the target's memory, with the file's bytes there, and
refuses with the reason. Here the replacement is the same build with the code of
PyRun_SimpleString changed (same addresses, other bytes), so that without the check the attach
would simply succeed: the test fails either way without it. Root still reads the mapped file itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Iterator, List

import pytest

from flight_profiler.attach import elf
from support import MadeUser, as_user, made_user, wait_until

STATIC_PYTHON = "/usr/bin/python3.11"  # Debian's: the C-API is in the executable itself
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
LOOP = "import time\nprint('ready', flush=True)\nwhile True:\n    time.sleep(0.01)\n"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or not shutil.which("setpriv")
    or not shutil.which("useradd")
    or not os.path.exists(STATIC_PYTHON),
    reason="needs root, setpriv, useradd and %s" % STATIC_PYTHON,
)


@pytest.fixture(scope="module")
def user() -> Iterator[MadeUser]:
    with made_user("fph14r") as made:
        yield made


def _other_build(path: str) -> bytes:
    """The file's bytes with the first 16 of PyRun_SimpleString's code changed: another build, same layout."""
    image = elf.read_symbols(path, ["PyRun_SimpleString"])
    offset = image.file_offset(image.symbols["PyRun_SimpleString"].value)
    assert offset is not None
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    data[offset : offset + 16] = bytes(byte ^ 0xFF for byte in data[offset : offset + 16])
    return bytes(data)


def _cli(pid: int, prefix: List[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHT_PROFILER_")}
    env["PYTHONPATH"] = SRC
    argv = [*prefix, sys.executable, "-m", "flight_profiler", str(pid), "--cmd", "getglobal __main__ LOOP", "--json"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd="/", check=False)


@pytest.mark.timeout(300)
def test_a_binary_replaced_on_disk_is_refused_not_crashed(user: MadeUser, tmp_path: str) -> None:
    directory = os.path.join(str(tmp_path), "deploy")
    os.mkdir(directory)
    os.chmod(str(tmp_path), 0o755)
    binary = os.path.join(directory, "python3.11")  # the version in the name, as an install has it
    shutil.copy(STATIC_PYTHON, binary)
    os.chmod(binary, 0o755)
    script = os.path.join(directory, "app.py")
    with open(script, "w") as fh:
        fh.write("LOOP = 1\n" + LOOP)
    proc = subprocess.Popen([*as_user(user), binary, script], stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
        tasks = len(os.listdir("/proc/%d/task" % proc.pid))
        with open(binary + ".new", "wb") as fh:
            fh.write(_other_build(binary))
        os.chmod(binary + ".new", 0o755)
        os.rename(binary + ".new", binary)  # as an upgrade does: the running one is now "(deleted)"

        refused = _cli(proc.pid, as_user(user))
        error = json.loads(refused.stdout.splitlines()[-1])["error"] if refused.stdout else refused.stderr
        assert refused.returncode != 0, (refused.stdout, refused.stderr)
        assert "the code of PyRun_SimpleString in its memory is not what %s holds on disk" % binary in error, error
        assert "Traceback" not in refused.stderr
        assert proc.poll() is None, "the target died"
        assert len(os.listdir("/proc/%d/task" % proc.pid)) == tasks
        # root reads the mapped file itself (map_files): the attach works and the target goes on
        answer = _cli(proc.pid, [])
        assert answer.returncode == 0, (answer.stdout, answer.stderr)
        assert json.loads(answer.stdout.splitlines()[-1])["result"]["value"]["v"] == 1
        detach = subprocess.run(
            [sys.executable, "-m", "flight_profiler", str(proc.pid), "--cmd", "detach"],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, PYTHONPATH=SRC),
            check=False,
        )
        assert detach.returncode == 0, detach.stderr
        assert wait_until(lambda: len(os.listdir("/proc/%d/task" % proc.pid)) == tasks, timeout=30)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(30)
        if proc.stdout:
            proc.stdout.close()
