"""Real-process tests of the ptrace injector (flight_profiler.attach.ptrace).

For every interpreter found x every target scenario: start a target, inject a payload
that records the thread it ran in and starts a daemon thread, wait for both effects,
then check that the target is still healthy (accept still accepts; SIGUSR1 still
raises in the main thread, which then exits 0).

Set FP_INJECTOR_RESULTS=/path/file.jsonl to collect one JSON line per injection.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from flight_profiler.attach import procfs, ptrace
from flight_profiler.errors import AttachError, InjectionError, TargetError
from interpreters import find_interpreters
from support import wait_until

INTERPRETERS = find_interpreters()
IDS = [i for i, _ in INTERPRETERS]
SCENARIOS = ["sleep", "sleeploop", "event", "accept", "busy", "threads", "threadsbusy"]
TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "targets", "injector_target.py")

# Main thread parked in a whitelisted syscall (gilstate) or running bytecode (pending).
EXPECTED_METHOD = {
    "sleep": "gilstate",
    "event": "gilstate",
    "accept": "gilstate",
    "threads": "gilstate",
    "busy": "pending",
}
# Scenarios whose main thread must be inside a syscall before we inject: right after
# "ready" it may still be on its way there, and a pending call would then never run.
BLOCKED = {"sleep", "event", "accept", "threads"}

pytestmark = pytest.mark.skipif(not INTERPRETERS, reason="no CPython interpreters found")


class Target:
    def __init__(self, python: str, scenario: str) -> None:
        self.scenario = scenario
        self.proc = subprocess.Popen(
            [python, TARGET, scenario],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            self.kill()
            raise RuntimeError(f"target {python} {scenario} did not start")
        self.port = int(line[1]) if len(line) > 1 else 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_parked(self, timeout: float = 10.0) -> None:
        """Until the main thread is parked in a safe syscall (not waiting for the GIL)."""
        runtime = ptrace.find_python_api(self.pid).runtime_range
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = procfs.read_thread_state(self.pid, self.pid)
            if state is not None and procfs.is_safe_parked(state, runtime):
                return
            time.sleep(0.01)
        raise AssertionError("main thread never parked in a safe syscall")

    def healthy(self, timeout: float = 15.0) -> None:
        """accept still accepts; SIGUSR1 raises in the main thread, which exits 0."""
        if self.scenario == "accept":
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
                assert conn.recv(2) == b"ok"
        deadline = time.monotonic() + timeout
        while True:
            # Resent: an exception raised by a signal handler while injected code runs
            # in the main thread is swallowed by the bootstrap's except BaseException.
            os.kill(self.pid, signal.SIGUSR1)
            try:
                assert self.proc.wait(2.0) == 0
                return
            except subprocess.TimeoutExpired:
                assert time.monotonic() < deadline, "target did not react to SIGUSR1"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def tmpdir_path() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="fp-inject-") as path:
        yield path


def payload(ran_in: str, agent: str) -> str:
    body = f"""
import os, threading

def _write(path, text):
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.rename(path + '.tmp', path)

_write({ran_in!r}, threading.current_thread().name)
t = threading.Thread(target=_write, args=({agent!r}, 'agent'), name='fp-test-agent')
t.daemon = True
t.start()
"""
    return ptrace.wrap_bootstrap(body)


def wait_file(path: str, timeout: float) -> Optional[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                return f.read()
        time.sleep(0.01)
    return None


def record(interp: str, scenario: str, report: ptrace.InjectionReport, extra: Dict[str, object]) -> None:
    out = os.environ.get("FP_INJECTOR_RESULTS")
    if out:
        with open(out, "a") as f:
            line = {"interp": interp, "scenario": scenario, "method": report.method, "stopped_ms": report.stopped_ms}
            line.update(extra)
            f.write(json.dumps(line) + "\n")


def inject_and_check(
    interp: str, target: Target, tmp: str, tid: Optional[int] = None, mode: str = "auto"
) -> Tuple[ptrace.InjectionReport, str]:
    ran_in, agent = os.path.join(tmp, "ran_in"), os.path.join(tmp, "agent")
    t0 = time.monotonic()
    report = ptrace.inject(target.pid, payload(ran_in, agent), tid=tid, mode=mode, timeout=5.0)
    assert procfs.tracer_pid(procfs.read_status(target.pid)) == 0, "left traced"
    name = wait_file(ran_in, 15.0)
    assert name is not None, f"payload did not run ({report})"
    assert wait_file(agent, 15.0) == "agent", "agent thread did not run"
    record(interp, target.scenario, report, {"ran_ms": (time.monotonic() - t0) * 1000, "thread": name})
    return report, name


@pytest.mark.timeout(90)
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize(("interp", "python"), INTERPRETERS, ids=IDS)
def test_inject_scenario(interp: str, python: str, scenario: str, tmpdir_path: str) -> None:
    target = Target(python, scenario)
    try:
        if scenario in BLOCKED:
            target.wait_parked()
        elif scenario in ("threads", "threadsbusy", "busy"):
            time.sleep(0.2)  # let the threads get going
        report, name = inject_and_check(interp, target, tmpdir_path)
        assert name == "MainThread"
        assert report.tid == target.pid
        assert report.result == 0
        expected = EXPECTED_METHOD.get(scenario)
        if expected:
            assert report.method == expected
        target.healthy()
    finally:
        target.kill()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("interp", "python"), INTERPRETERS, ids=IDS)
def test_parked_worker_thread(interp: str, python: str, tmpdir_path: str) -> None:
    """Fallback path: run in an idle worker parked in a safe syscall, main untouched."""
    target = Target(python, "threadsbusy")
    try:
        api = ptrace.find_python_api(target.pid)
        candidates: List[procfs.ThreadState] = []

        def parked() -> bool:
            # busy workers are running or waiting for the GIL (a futex inside _PyRuntime)
            candidates[:] = [
                s
                for s in procfs.thread_states(target.pid)
                if s.tid != target.pid and procfs.is_safe_parked(s, api.runtime_range)
            ]
            return bool(candidates)

        # the idle workers park once they are going: a fixed 0.2 s is not enough on a loaded machine
        assert wait_until(parked), "no idle worker parked in a safe syscall"
        report, name = inject_and_check(interp, target, tmpdir_path, tid=candidates[0].tid, mode="gilstate")
        assert report.method == "gilstate"
        assert name.startswith("idle-")
        target.healthy()
    finally:
        target.kill()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("interp", "python"), INTERPRETERS, ids=IDS)
def test_gilstate_refuses_busy_main(interp: str, python: str, tmpdir_path: str) -> None:
    target = Target(python, "busy")
    try:
        with pytest.raises(InjectionError, match="refusing"):
            ptrace.inject(
                target.pid, payload(os.path.join(tmpdir_path, "x"), os.path.join(tmpdir_path, "y")), mode="gilstate"
            )
        assert procfs.tracer_pid(procfs.read_status(target.pid)) == 0
        time.sleep(0.3)
        assert not os.path.exists(os.path.join(tmpdir_path, "x"))
        target.healthy()
    finally:
        target.kill()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("interp", "python"), INTERPRETERS, ids=IDS)
def test_relative_c_sleep_is_not_cut_short(interp: str, python: str, tmpdir_path: str) -> None:
    """A thread in glibc sleep() (relative clock_nanosleep) goes back to sleeping the time left.

    The injection interrupts the sleep twice (MAP and RUN stages); each time the frame
    re-issues it with the remaining time. An -EINTR would make sleep() return and the
    target exit with status 3.
    """
    target = Target(python, "csleep")
    try:
        target.wait_parked()
        inject_and_check(interp, target, tmpdir_path)
        time.sleep(0.3)
        assert target.proc.poll() is None, "sleep() returned early: the target exited"
        state = procfs.read_thread_state(target.pid, target.pid)
        assert state is not None and state.syscall_name == "clock_nanosleep"
    finally:
        target.kill()


def test_not_python() -> None:
    proc = subprocess.Popen(["sleep", "100"])
    try:
        time.sleep(0.1)
        with pytest.raises(TargetError, match="does not look like a CPython process"):
            ptrace.inject(proc.pid, "pass")
        assert procfs.tracer_pid(procfs.read_status(proc.pid)) == 0
    finally:
        proc.kill()
        proc.wait()


def test_dead_pid() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    with pytest.raises(TargetError, match="no process with pid"):
        ptrace.inject(proc.pid, "pass")


def test_zombie_pid() -> None:
    proc = subprocess.Popen(["true"])
    try:
        time.sleep(0.2)  # exited, not reaped yet
        with pytest.raises(TargetError, match="has exited"):
            ptrace.inject(proc.pid, "pass")
    finally:
        proc.wait()


def test_bad_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        ptrace.inject(os.getpid(), "pass", mode="sometimes")


_TRACER = """
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
if libc.ptrace(0x4206, int(sys.argv[1]), None, None) != 0:
    sys.exit(1)
print("attached", flush=True)
time.sleep(100)
"""


@pytest.mark.timeout(60)
def test_other_tracer_is_named(tmpdir_path: str) -> None:
    python = INTERPRETERS[-1][1]
    target = Target(python, "sleep")
    tracer = subprocess.Popen([python, "-c", _TRACER, str(target.pid)], stdout=subprocess.PIPE, text=True)
    try:
        assert tracer.stdout is not None and tracer.stdout.readline().strip() == "attached"
        with pytest.raises(AttachError, match=f"traced by pid {tracer.pid}"):
            ptrace.inject(target.pid, "pass")
    finally:
        tracer.kill()
        tracer.wait()
    try:
        target.healthy()
    finally:
        target.kill()


def test_wrap_bootstrap_contains_everything() -> None:
    """The wrapper binds nothing in __main__, contains exceptions and SyntaxErrors."""
    namespace: Dict[str, object] = {"__name__": "__main__"}
    before = set(namespace)
    exec(ptrace.wrap_bootstrap("x = 1\nraise SystemExit(3)"), namespace)
    exec(ptrace.wrap_bootstrap("def broken(:"), namespace)
    assert set(namespace) - before <= {"__builtins__"}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_repeated_injection_stress(tmpdir_path: str) -> None:
    """50 injections into an allocation-heavy main thread with 3 allocating workers."""
    by_id = dict(INTERPRETERS)
    interp = next((i for i in ("3.12", "3.14", "3.11") if i in by_id), INTERPRETERS[-1][0])
    target = Target(by_id[interp], "alloc")
    stopped: List[float] = []
    try:
        time.sleep(0.2)
        for i in range(50):
            ran_in = os.path.join(tmpdir_path, f"ran_in{i}")
            report = ptrace.inject(target.pid, payload(ran_in, ran_in + ".agent"), timeout=5.0)
            stopped.append(report.stopped_ms)
            assert wait_file(ran_in, 10.0) == "MainThread", f"injection {i} did not run ({report})"
            assert wait_file(ran_in + ".agent", 10.0) == "agent"
            assert target.proc.poll() is None, f"target died after injection {i}"
            time.sleep(0.02)
        target.healthy()
    finally:
        target.kill()
    stopped.sort()
    print(f"stress {interp}: stopped_ms p50={stopped[len(stopped) // 2]:.2f} max={stopped[-1]:.2f}")
