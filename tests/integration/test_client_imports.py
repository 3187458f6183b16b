"""A ``--cmd`` on a reused agent imports only what that command needs (issue 14: a light client).

The CLI runs as ``python -m flight_profiler`` would, with an exit handler that
prints ``sys.modules`` (``-X importtime`` misses what ``importlib.import_module``
loads). No timing is asserted here; bench/client_startup.py measures the wall time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from interpreters import find_interpreters
from support import RunningTarget, cli, start_target

# never needed to run one command against an agent that is already there
HEAVY = ("rich", "prompt_toolkit", "mcp", "pydantic", "dataclasses", "secrets", "subprocess", "ctypes")
HEAVY_OURS = ("flight_profiler.fleet.", "flight_profiler.readers.", "flight_profiler.attach.injector")


@pytest.fixture(scope="module")
def target() -> Iterator[RunningTarget]:
    running = start_target(find_interpreters()[-1][1], "service_target.py", "sleep")
    assert cli(running.pid, "module os").returncode == 0  # the agent is in: the runs below reuse it
    yield running
    cli(running.pid, "detach")
    running.stop()


# the client as ``python -m flight_profiler ARGS`` runs it, telling its modules at exit
RUN_AND_TELL = """
import atexit, json, runpy, sys
atexit.register(lambda: sys.stderr.write("MODULES " + json.dumps(sorted(sys.modules)) + "\\n"))
sys.argv = ["flight_profiler"] + json.loads(sys.argv[1])
runpy.run_module("flight_profiler", run_name="__main__", alter_sys=True)
"""


def imported(pid: int, *options: str) -> set[str]:
    args = [str(pid), "--cmd", "module os", *options]
    proc = subprocess.run(
        [sys.executable, "-c", RUN_AND_TELL, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # not measured: a measured child imports coverage (and its dataclasses) before the client
        env={k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "imported in the target" in proc.stdout or '"module"' in proc.stdout
    told = [line for line in proc.stderr.splitlines() if line.startswith("MODULES ")]
    assert len(told) == 1, proc.stderr[-2000:]
    return set(json.loads(told[0][len("MODULES ") :]))


@pytest.mark.parametrize("options", [("--json",), ("--no-color",)], ids=["json", "text"])
def test_a_reused_agent_command_imports_no_heavy_module(target: RunningTarget, options: tuple[str, ...]) -> None:
    modules = imported(target.pid, *options)
    assert "flight_profiler.commands.module.client" in modules  # the list is complete
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY_OURS))
    assert heavy == []
