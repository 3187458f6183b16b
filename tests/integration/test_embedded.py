"""An application that embeds CPython, as uwsgi, mod_wsgi or a game engine does: its executable is not
python, the interpreter is the shared libpython it links (tests/targets/embed_host.c, compiled here
against each interpreter that has one). The attach must find the interpreter through the library, the
agent must start in it, py-spy must read it, and the host must go on as before after the detach.

Built wherever the interpreter's build has a shared libpython and its headers: pyenv's, and Debian's
3.11, whose static python3.11 comes with a stripped libpython3.11.so for embedders (so this covers a
stripped Debian library too); the private 3.14 and 3.15 bring no headers and are skipped, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from interpreters import find_interpreters
from support import TARGETS, RunningTarget, cli

INTERPRETERS = find_interpreters()
HOST_SOURCE = os.path.join(TARGETS, "embed_host.c")
BUILD_VARS = "import json, sysconfig; print(json.dumps({k: sysconfig.get_config_var(k) for k in %r}))" % (
    ["Py_ENABLE_SHARED", "INCLUDEPY", "LIBDIR", "LDVERSION"],
)


def _build_host(python: str, directory: str) -> str:
    """embed_host.c compiled and linked against ``python``'s libpython; skips where that cannot be."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the embedding host")
    found = subprocess.run([python, "-c", BUILD_VARS], capture_output=True, text=True, timeout=60, check=True)
    config: dict[str, Any] = json.loads(found.stdout)
    if not config["Py_ENABLE_SHARED"] or not os.path.exists(os.path.join(config["INCLUDEPY"], "Python.h")):
        pytest.skip("a static build without headers: no libpython to embed")
    host = os.path.join(directory, "apphost")  # what `ps` shows: not python
    include, libdir = "-I" + config["INCLUDEPY"], "-L" + config["LIBDIR"]
    link = ["-lpython" + config["LDVERSION"], "-Wl,-rpath," + config["LIBDIR"]]
    subprocess.run(
        [compiler, "-o", host, HOST_SOURCE, include, libdir, *link],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return host


@pytest.fixture(params=INTERPRETERS, ids=[name for name, _ in INTERPRETERS])
def embedded(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[RunningTarget]:
    host = _build_host(request.param[1], str(tmp_path))
    errors = str(tmp_path / "host.err")  # RunningTarget.why() shows it
    with open(errors, "w") as err:
        proc = subprocess.Popen([host, "embedded_app.py"], cwd=TARGETS, stdout=subprocess.PIPE, stderr=err, text=True)
    running = RunningTarget(proc, stderr=errors)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ready"), running.why()
        yield running
    finally:
        running.stop()


def test_an_application_that_embeds_python_is_attached_through_its_libpython(embedded: RunningTarget) -> None:
    pid = embedded.pid
    with open("/proc/%d/cmdline" % pid, "rb") as fh:
        assert fh.read().split(b"\0")[0].endswith(b"apphost")

    stack = cli(pid, "stack")  # py-spy, from outside
    assert stack.returncode == 0, stack.stderr
    [main] = [t for t in stack.results[0]["threads"] if t["tid"] == pid]
    assert [f["name"] for f in main["frames"]][-1] == "main"

    calls = cli(pid, "getglobal __main__ CALLS")  # the agent, started in the host's interpreter
    assert calls.returncode == 0, calls.stderr
    assert calls.results[0]["value"]["items"][0]["v"] > 0

    watch = cli(pid, "watch __main__ work -n 1")  # a hook on the host's own code
    assert watch.returncode == 0, watch.stderr
    [call] = [r for r in watch.results if r["kind"] == "call"]
    assert [v["value"] for v in call["values"]] == [
        {"t": "tuple", "kind": "tuple", "items": [{"t": "int", "v": 100}], "len": 1, "more": 0},
        {"t": "int", "v": 4950},
    ]

    detach = cli(pid, "detach")
    assert detach.returncode == 0, detach.stderr
    os.kill(pid, signal.SIGUSR1)  # the host's main thread still runs Python and takes its signals
    assert embedded.proc.wait(30) == 0, embedded.why()
