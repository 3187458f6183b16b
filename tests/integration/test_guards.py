"""Attach refusals: opt-out, another tracer, another user. Each leaves the target as it was."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from flight_profiler.attach.paths import agent_socket
from interpreters import find_interpreters
from support import cli, start_target

PYTHON = find_interpreters()[-1][1]


def test_opt_out_is_honoured_unless_forced() -> None:
    env = dict(os.environ, PYTHON_DISABLE_REMOTE_DEBUG="1")
    target = start_target(PYTHON, "service_target.py", "event", env=env)
    try:
        refused = cli(target.pid, "module /x.py")
        assert refused.returncode != 0 and "opted out of remote debugging" in refused.errors[0]
        assert "--force" in refused.errors[0]
        assert not os.path.exists(agent_socket(target.pid))
        forced = cli(target.pid, "module /x.py", "--force")
        assert forced.returncode == 0, forced.stdout
        cli(target.pid, "detach")
        assert target.healthy()
    finally:
        target.stop()


def test_x_option_opt_out() -> None:
    target = start_target(PYTHON, "service_target.py", "event", python_args=("-X", "disable-remote-debug"))
    try:
        refused = cli(target.pid, "module /x.py")
        assert refused.returncode != 0 and "-X disable-remote-debug" in refused.errors[0]
    finally:
        target.stop()


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to hold the target")
def test_another_tracer_is_named() -> None:
    target = start_target(PYTHON, "service_target.py", "event")
    tracer = subprocess.Popen(["strace", "-p", str(target.pid), "-o", os.devnull])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _tracer(target.pid) == 0:
            time.sleep(0.05)
        refused = cli(target.pid, "module /x.py")
        assert refused.returncode != 0
        assert "already being traced by pid %d" % tracer.pid in refused.errors[0]
        tracer.terminate()
        tracer.wait(10)
        assert target.healthy()
    finally:
        tracer.kill()
        target.stop()


def _tracer(pid: int) -> int:
    with open("/proc/%d/status" % pid) as fh:
        return int(next(line for line in fh if line.startswith("TracerPid:")).split()[1])


_AS_NOBODY = r"""
import os, sys
import flight_profiler.cli.main as main
import flight_profiler.attach.attacher, flight_profiler.attach.target, flight_profiler.cli.output, json, locale
import flight_profiler.attach.procfs  # imported on the way to the error; it imports typing, under /root
main.build_parser()  # argparse and gettext read files we cannot read once we are nobody
os.setgid(65534)
os.setuid(65534)
sys.exit(main.main([sys.argv[1], "--cmd", "getglobal __main__ CONFIG", "--json"]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another uid")
def test_other_user_gets_the_fix() -> None:
    target = start_target(PYTHON, "service_target.py", "event")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _AS_NOBODY, str(target.pid)], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode != 0
        assert "you are uid 65534: run as that user or as root" in proc.stdout, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        assert target.healthy()
    finally:
        target.stop()


OLD_PYTHONS = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.7.*/bin/python")))


@pytest.mark.skipif(not OLD_PYTHONS, reason="no Python 3.7 on this machine")
def test_unsupported_version_is_refused() -> None:
    sleeper = subprocess.Popen([OLD_PYTHONS[-1], "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)
        result = cli(sleeper.pid, "module /x.py")
        assert result.returncode != 0 and "runs Python 3.7; flight_profiler supports 3.8 to 3.15" in result.errors[0]
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_demo_runs_a_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flight_profiler", "demo", "--cmd", "getglobal __main__ SETTINGS -x 2", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.splitlines()[0])
    items = {k["v"]: v for k, v in record["result"]["value"]["items"]}
    assert items["region"]["v"] == "eu-west-1"
