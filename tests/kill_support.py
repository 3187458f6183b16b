"""Targets that prove they are unharmed, for the kill-safety tests and bench/kill_sweep.py.

A target (tests/targets/injector_target.py) started with a beat file rewrites a counter
there while it does its own work. ``Served.harm()`` lists what is wrong with it after a
client died: dead, stopped, traced, no longer serving, not attachable, main thread not
answering SIGUSR1. An empty list means unharmed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Dict, List, Tuple

from flight_profiler.attach import procfs
from support import RunningTarget, cli, start_target, wait_until

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

# situation -> injector_target.py scenario: main thread parked (gilstate path) or running bytecode (pending)
SITUATIONS = {"idle": "event", "sleeping": "sleeploop", "select": "select", "busy": "busy"}


def client_env(**extra: str) -> Dict[str, str]:
    """The environment of a client process: our sources first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def process_state(pid: int, tid: int = 0) -> str:
    """The one-letter state in /proc/PID[/task/TID]/stat ("" once gone)."""
    path = "/proc/%d/stat" % pid if not tid else "/proc/%d/task/%d/stat" % (pid, tid)
    try:
        with open(path) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def cli_attach_argv(pid: int, command: str) -> List[str]:
    return [sys.executable, "-m", "flight_profiler", str(pid), "--cmd", command]


class Served:
    """A target started with a beat file, and the checks that it is unharmed."""

    def __init__(self, python: str, situation: str, workdir: str) -> None:
        self.situation = situation
        self.scenario = SITUATIONS[situation]
        self.beat = os.path.join(workdir, "beat")
        self.ran = os.path.join(workdir, "ran")
        self.target: RunningTarget = start_target(python, "injector_target.py", self.scenario, self.beat)
        if self.scenario != "select":  # its main thread beats per connection served
            assert wait_until(lambda: self.count() > 0, timeout=20), "target never beat"
        self.baseline_pages = self.exec_pages()

    @property
    def pid(self) -> int:
        return self.target.pid

    def count(self) -> int:
        try:
            with open(self.beat) as fh:
                return int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def runs(self) -> int:
        """How many times an injected payload appended to the ``ran`` file."""
        try:
            with open(self.ran) as fh:
                return len(fh.read().splitlines())
        except OSError:
            return 0

    def exec_pages(self) -> List[Tuple[int, int]]:
        """Anonymous r-x mappings (the injector's page is exactly that)."""
        return [(e.start, e.end) for e in procfs.read_maps(self.pid) if e.perms.startswith("r-x") and not e.path]

    def not_stopped_or_traced(self) -> bool:
        if procfs.tracer_pid(procfs.read_status(self.pid)):
            return False
        return all(process_state(self.pid, tid) not in ("t", "T") for tid in procfs.thread_ids(self.pid))

    def serve_once(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.target.port), timeout=10) as conn:
                conn.settimeout(10)
                return conn.recv(2) == b"ok"
        except OSError:
            return False

    def harm(self) -> List[str]:
        """What is wrong with the target right now (alive, running, untraced, serving)."""
        if self.target.proc.poll() is not None:
            return ["target died (exit status %s)" % self.target.proc.returncode]
        if not wait_until(self.not_stopped_or_traced, timeout=10):
            return ["target left stopped or traced"]
        before = self.count()
        if self.scenario == "select" and not self.serve_once():
            return ["target no longer answers connections"]
        if not wait_until(lambda: self.count() > before, timeout=15):
            return ["target stopped doing its own work (beat counter stuck at %d)" % before]
        return []

    def attach_harm(self) -> List[str]:
        """A normal attach + command + detach must work, then SIGUSR1 must end the main thread cleanly."""
        result = cli(self.pid, "getglobal __main__ BEAT", timeout=60)
        if result.returncode != 0:
            return ["attach after the kill failed: %s" % (result.errors or result.stderr.strip()[-300:])]
        if cli(self.pid, "detach", timeout=60).returncode != 0:
            return ["detach after the kill failed"]
        if not self.target.healthy():
            return ["main thread did not exit 0 on SIGUSR1 (exit status %s)" % self.target.proc.returncode]
        return []

    def stop(self) -> None:
        self.target.stop()


def traced(pid: int) -> bool:
    try:
        return procfs.tracer_pid(procfs.read_status(pid)) != 0
    except Exception:
        return False


def kill_cli_after(served: Served, delay: float, phase_log: str, after_traced: bool = False) -> str:
    """Start a first CLI attach, SIGKILL it ``delay`` s later; return the last injector phase it logged.

    ``after_traced``: count ``delay`` from the moment the target is first seen traced
    (any injector, ours or an older one), so the kills land in and around the ptrace window.
    """
    client = subprocess.Popen(
        cli_attach_argv(served.pid, "getglobal __main__ BEAT"),
        env=client_env(FLIGHT_PROFILER_TEST_PHASE_LOG=phase_log),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if after_traced:
        end = time.monotonic() + 30
        while client.poll() is None and not traced(served.pid) and time.monotonic() < end:
            pass  # spin: the window we aim at lasts milliseconds
    try:
        client.wait(delay)
    except subprocess.TimeoutExpired:
        client.kill()
    client.wait(30)
    try:
        with open(phase_log) as fh:
            lines = fh.read().split()
    except OSError:
        return ""
    return lines[-2] if len(lines) >= 2 else ""
