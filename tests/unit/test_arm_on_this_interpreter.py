"""The pre-armed agent on this interpreter: an application started armed, the real CLI as its client.

``tests/integration/test_arm.py`` proves arming on every interpreter found; this runs the same path on
the venv's own interpreter, whose children ``./dev test`` measures (coverage's patch = subprocess): the
arming module, the bundle it loads and the agent serving from it count, as an injected agent in a
target of another interpreter cannot. Both halves are separate processes, as in production.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from flight_profiler.attach import paths

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = os.path.join(os.path.dirname(HERE), "targets")
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")
WAIT = 30.0


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHT_PROFILER_")}
    env["PYTHONPATH"] = SRC
    return env


def _cli(pid: int, command: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "flight_profiler", str(pid), "--cmd", command, "--json"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=_env(), cwd="/", check=False)


def _wait_for(path: str) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def test_an_armed_application_answers_detaches_and_arms_again() -> None:
    argv = [sys.executable, "-m", "flight_profiler.arm", os.path.join(TARGETS, "armed_app.py"), "wait"]
    app = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd="/")
    try:
        assert app.stdout is not None
        line = app.stdout.readline()
        assert line.startswith("ready"), line
        pid = int(line.split()[1])
        socket_path = paths.agent_socket(pid)
        for _ in range(2):  # a detach arms it again
            assert _wait_for(socket_path), "not armed"
            answer = _cli(pid, "getglobal __main__ MODE")
            assert answer.returncode == 0, answer.stdout + answer.stderr
            assert json.loads(answer.stdout.splitlines()[-1])["result"]["value"]["v"] == "wait"
            assert _cli(pid, "detach").returncode == 0
        assert app.poll() is None
    finally:
        if app.poll() is None:
            app.send_signal(signal.SIGINT)  # a normal end: its atexit handlers (coverage's) run
            try:
                app.wait(WAIT)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait(WAIT)
        for stream in (app.stdout, app.stderr):
            if stream:
                stream.close()


@pytest.mark.parametrize("argv", [[], ["-m"], ["/nonexistent/h24_app.py"]])
def test_arm_refuses_a_command_line_it_cannot_run(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flight_profiler.arm", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        cwd="/",
        check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
