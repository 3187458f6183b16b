"""Helpers for tests that start real targets and run the real CLI against them."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = os.path.join(HERE, "targets")
SHELL_PROMPT = "flight_profiler>"


@dataclass
class RunningTarget:
    proc: subprocess.Popen[str]
    port: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    stderr: str = ""  # a file with what the target wrote to stderr (faulthandler's report of a crash)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def why(self) -> str:
        """How the target ended (if it did) and the end of its stderr: for failure messages."""
        code = self.proc.poll()
        if code is None:
            said = "still running; its threads: %s" % threads_of(self.pid)
        elif code < 0:
            said = "killed by %s" % signal.Signals(-code).name
        else:
            said = "exit status %d" % code
        text = ""
        if self.stderr:
            with contextlib.suppress(OSError), open(self.stderr, errors="replace") as fh:
                text = fh.read()
        if len(text) > 4000:  # faulthandler names the crashing thread first: keep the head and the end
            text = text[:3000] + "\n[...]\n" + text[-1000:]
        return "target pid %d: %s; its stderr: %s" % (self.pid, said, text.strip() or "(empty)")

    def healthy(self, scenario: str = "", timeout: float = 10.0) -> bool:
        """The main thread still reacts to a signal and the process exits 0."""
        if scenario == "accept":
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
                if conn.recv(2) != b"ok":
                    return False
        time.sleep(0.3)
        os.kill(self.pid, signal.SIGUSR1)
        try:
            return self.proc.wait(timeout) == 0
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        if self.stderr:
            with contextlib.suppress(OSError):
                os.unlink(self.stderr)


def threads_of(pid: int, most: int = 20) -> str:
    """Each thread's name, state and kernel wait channel: what a target that no longer answers is doing."""
    found = []
    try:
        tids = sorted(os.listdir("/proc/%d/task" % pid), key=int)
    except OSError as exc:
        return "unreadable (%s)" % exc.strerror
    for tid in tids[:most]:
        with contextlib.suppress(OSError, IndexError):
            base = "/proc/%d/task/%s/" % (pid, tid)
            with open(base + "stat") as fh:
                stat = fh.read()
            with open(base + "wchan") as fh:
                wchan = fh.read().strip()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            found.append("%s %s %s (%s)" % (tid, name, stat[stat.rindex(")") + 2], wchan or "-"))
    return ", ".join(found) + (", and %d more" % (len(tids) - most) if len(tids) > most else "")


def start_target(
    python: str,
    script: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    python_args: tuple[str, ...] = (),
) -> RunningTarget:
    # stderr to a file, and faulthandler on (unless the test sets the environment itself): when a
    # target dies in the middle of a run, the failure says how, with the Python stacks of a crash.
    fd, err_path = tempfile.mkstemp(prefix="fp-target-", suffix=".err")
    try:
        proc = subprocess.Popen(
            [python, *python_args, os.path.join(TARGETS, script), *args],
            stdout=subprocess.PIPE,
            stderr=fd,
            text=True,
            env=dict(os.environ, PYTHONFAULTHANDLER="1") if env is None else env,
            cwd=TARGETS,
        )
    finally:
        os.close(fd)
    running = RunningTarget(proc, stderr=err_path)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    # a target that never prints (hung before its first line) is killed at the deadline, which ends the
    # readline; waited for there until the test's own timeout, it was left running after the run
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("ready"):
                words = line.split()
                running.port = int(words[1]) if len(words) > 1 else 0
                return running
    finally:
        killer.cancel()
    proc.kill()
    proc.wait()
    why = running.why()
    running.stop()
    raise RuntimeError("target %s %s did not get ready (%s)" % (script, args, why))


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def results(self) -> list[dict[str, Any]]:
        return [record["result"] for record in self.records if "result" in record]

    @property
    def errors(self) -> list[str]:
        return [record["error"] for record in self.records if "error" in record]


def cli(
    pid: int | str,
    command: str | None = None,
    *options: str,
    json_output: bool = True,
    timeout: float = 60.0,
    input: str | None = None,
) -> CliResult:
    argv = [sys.executable, "-m", "flight_profiler", str(pid)]
    if command is not None:
        argv += ["--cmd", command]
    if json_output:
        argv.append("--json")
    argv += list(options)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input, check=False)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def agent_threads(pid: int) -> list[str]:
    """Names of our agent's threads in ``pid``, read from outside by py-spy (no agent needed)."""
    from flight_profiler.readers import pyspy

    return [
        t.get("thread_name") or ""
        for t in pyspy.dump(pid)
        if (t.get("thread_name") or "").startswith("flight_profiler")
    ]


# gevent and eventlet, each in a venv of its own (tests/integration/test_green.py, test_hostile_env.py): the
# interpreters they are tried on (gevent's oldest and a recent one; eventlet on one)
GREEN_VERSIONS = (("gevent", ("3.8", "3.12")), ("eventlet", ("3.12",)))


def green_interpreters(interpreters: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(library, interpreter name, python) for each library on each of its interpreters found."""
    return [
        (library, name, python) for library, wanted in GREEN_VERSIONS for name, python in interpreters if name in wanted
    ]


def green_python(library: str, name: str, python: str) -> str:
    """A venv of ``python`` with ``library`` (made once, under bench/.venvs like the torch env), or a skip."""
    import pytest

    script = os.path.join(TARGETS, "ensure_gevent_env.sh")
    venv = os.path.join(os.path.dirname(HERE), "bench", ".venvs", library + name.replace(".", ""))
    proc = subprocess.run(
        ["bash", script, python, venv, library], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        pytest.skip("%s could not be installed for %s: %s" % (library, name, (proc.stderr or proc.stdout)[-300:]))
    return os.path.join(venv, "bin", "python")


def wheel_dir(package: str, name: str, python: str) -> str:
    """A directory with ``package`` for ``python`` (PYTHONPATH; made once under bench/.venvs by the pip of
    the test's interpreter: Debian's 3.14 and 3.15 have none), or a skip."""
    import pytest

    script = os.path.join(TARGETS, "ensure_wheel_dir.sh")
    where = os.path.join(os.path.dirname(HERE), "bench", ".venvs", "%s-%s" % (package, name.replace(".", "")))
    proc = subprocess.run(
        ["bash", script, python, where, package, sys.executable],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip("%s could not be installed for %s: %s" % (package, name, (proc.stderr or proc.stdout)[-300:]))
    return where


def fd_count(pid: int) -> int:
    return len(os.listdir("/proc/%d/fd" % pid))


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Whether ``predicate()`` came true within ``timeout`` seconds. The default is long: CI runs 4 workers
    on 2 cores, where a start or a py-spy look can take seconds, and a condition that comes true costs
    no more for it (no caller waits for something that should not happen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@contextlib.contextmanager
def served(
    python: str, script: str, *args: str, detach: bool = True, healthy: bool = False, timeout: float = 30.0
) -> Iterator[RunningTarget]:
    """A target for the length of the block: detached at the end (``detach``), checked still healthy
    (``healthy``: it reacts to SIGUSR1 and exits 0), and killed whatever happened."""
    running = start_target(python, script, *args, timeout=timeout)
    try:
        yield running
        if detach:
            cli(running.pid, "detach")
        if healthy:
            assert running.healthy(), "%s no longer answers SIGUSR1 (or did not exit 0) after detach; %s" % (
                script,
                running.why(),
            )
    finally:
        running.stop()


def target_fixture(
    script: str,
    *args: str,
    detach: bool = True,
    healthy: bool = False,
    pythons: list[tuple[str, str]] | None = None,
    newest_only: bool = False,
) -> Any:
    """The module's ``target`` fixture: ``script`` started once per module on each interpreter of
    ``pythons`` (default: all found; the test ids carry the interpreter), or once on the newest one
    (``newest_only``, no parameter). Use as ``target = target_fixture("service_target.py", "event")``.
    """
    import pytest

    from interpreters import find_interpreters

    if newest_only:

        @pytest.fixture(scope="module")
        def newest() -> Iterator[RunningTarget]:
            with served(find_interpreters()[-1][1], script, *args, detach=detach, healthy=healthy) as running:
                yield running

        return newest
    chosen = find_interpreters() if pythons is None else pythons

    @pytest.fixture(scope="module", params=chosen, ids=[name for name, _ in chosen])
    def each(request: pytest.FixtureRequest) -> Iterator[RunningTarget]:
        with served(request.param[1], script, *args, detach=detach, healthy=healthy) as running:
            yield running

    return each


def spawn_shell(pid: int, home: str, log: str | None = None) -> Any:
    """The interactive shell on ``pid`` in a real pseudo-terminal (40x200, no colour), at its first
    prompt; ``log``: a file that gets everything the shell printed."""
    import pexpect

    env = dict(os.environ, HOME=home, NO_COLOR="1", TERM="xterm")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "flight_profiler", str(pid)],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )
    if log is not None:
        child.logfile_read = open(log, "w")  # noqa: SIM115 - the caller closes it with the child
    child.expect_exact(SHELL_PROMPT)
    return child


def user_name(base: str) -> str:
    """A name for a user a test creates: ``base`` plus a tag of this checkout and xdist worker, so that
    test runs side by side (workers, other checkouts) never create or delete each other's users, and
    the next run in the same place still finds the leftover of a killed one."""
    checkout = hashlib.sha1(os.path.dirname(HERE).encode()).hexdigest()[:4]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw").replace("gw", "")
    return "%s_%s%s" % (base, checkout, worker)  # at most 5 + 1 + 4 + 2 characters of [a-z0-9_]


class MadeUser:
    """A user a test made (``made_user``)."""

    def __init__(self, name: str) -> None:
        import pwd

        entry = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def made_user(base: str) -> Iterator[MadeUser]:
    """A real user for the block (``useradd``, no home); on the way out every process of it is killed,
    its private directory removed and the user deleted. Skips where root, setpriv or useradd is missing."""
    import shutil

    import pytest

    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("useradd"):
        pytest.skip("needs root, setpriv and useradd")
    name = user_name(base)
    subprocess.run(["userdel", name], capture_output=True, check=False)  # a leftover of a killed run
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True, capture_output=True)
    made = MadeUser(name)
    try:
        yield made
    finally:
        for pid in [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]:
            with contextlib.suppress(OSError):
                if os.stat("/proc/%d" % pid).st_uid == made.uid:
                    os.kill(pid, signal.SIGKILL)  # every process of this user is one the test started
        shutil.rmtree("/tmp/flight_profiler-%d" % made.uid, ignore_errors=True)
        subprocess.run(["userdel", name], capture_output=True, check=False)


def as_user(user: MadeUser) -> list[str]:
    """``setpriv`` as the user, with CAP_DAC_READ_SEARCH only (our interpreters live under root's 0700
    home): no CAP_SYS_ADMIN, CAP_SYS_PTRACE or any other privilege."""
    return [
        "setpriv",
        "--reuid=%d" % user.uid,
        "--regid=%d" % user.gid,
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
    ]


def target_modules(target: RunningTarget) -> set[str]:
    """The target's sys.modules, printed by its SIGUSR2 handler (hostile_target.py: busy2, nosocket)."""
    assert target.proc.stdout is not None
    os.kill(target.pid, signal.SIGUSR2)
    while True:
        line = target.proc.stdout.readline()
        assert line, "target exited"
        if line.startswith("modules "):
            return set(line.split()[2].split(","))


HOGS_ENV = "FP_TEST_HOGS"


@contextlib.contextmanager
def cpu_hogs(count: int | None = None) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` busy-looping processes (default: ``$FP_TEST_HOGS``, else none) for the length of the block.

    For the tests whose claim is "under load" (test_stress.py, test_attach_matrix.py): run them with
    ``FP_TEST_HOGS=2`` to put two CPU-bound processes beside them on purpose, whatever else the
    machine runs. Each hog is killed at the end, however the block ended.
    """
    if count is None:
        count = int(os.environ.get(HOGS_ENV, "0") or "0")
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            hogs.append(subprocess.Popen([sys.executable, "-c", "while 1: pass"], stdin=subprocess.DEVNULL))
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
