"""A target close to its cgroup's memory limit is refused before anything is injected (issue 15's "the
target comes first"): a 3.12 target 2 MB under its limit was OOM-killed by the attach, and the client
said "pid N exited while we waited for the agent".

A real memory cgroup (v1 or v2, whichever this host mounts with the memory controller) is made under
the test's own, the target is moved into it and the limit set just above what it uses; once the limit
is raised the same attach works. Skipped where no memory cgroup can be made (not root, no controller).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Iterator, Tuple

import pytest

from flight_profiler.attach import headroom
from interpreters import find_interpreters
from support import RunningTarget, cli, start_target, user_name, wait_until

PYTHON = find_interpreters()[-1][1]
pytestmark = pytest.mark.any_interpreter  # the check is the client's: one interpreter shows it


def _text(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def _write(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


@contextlib.contextmanager
def _child_cgroup(controller: str, base: str, needs: Tuple[str, str]) -> Iterator[Tuple[str, int]]:
    """A child of our own ``controller`` cgroup (v1, or v2 with the controller enabled for children):
    (directory, version); ``needs``: the file it must have (v1, v2), else the test is skipped. Its
    processes go back to the parent, and it is removed, on the way out."""
    own = [found for found in headroom.cgroup_dirs(os.getpid(), controller) if found[2] == 1 or _has(found, controller)]
    if os.geteuid() != 0 or not own:
        pytest.skip("no %s cgroup of ours to make a child in (needs root and the controller)" % controller)
    parent, _, version = own[0]
    directory = os.path.join(parent, user_name(base))
    try:
        if os.path.isdir(directory):
            os.rmdir(directory)  # a leftover of a killed run (empty: its processes are gone)
        os.mkdir(directory)
        if version == 2 and controller != "freezer":  # v2's freezer is core, not a controller
            _write(os.path.join(parent, "cgroup.subtree_control"), "+" + controller)
    except OSError as exc:
        pytest.skip("cannot make a %s cgroup under %s: %s" % (controller, parent, exc))
    if not os.path.exists(os.path.join(directory, needs[version - 1])):
        os.rmdir(directory)
        pytest.skip("the %s controller is not enabled for children of %s" % (controller, parent))
    try:
        yield directory, version
    finally:
        for pid in _text(os.path.join(directory, "cgroup.procs")).split():
            with contextlib.suppress(OSError):
                _write(os.path.join(parent, "cgroup.procs"), pid)
        wait_until(lambda: not _text(os.path.join(directory, "cgroup.procs")).split(), timeout=10)
        os.rmdir(directory)


def _has(found: Tuple[str, str, int], controller: str) -> bool:
    return controller == "freezer" or controller in _text(os.path.join(found[0], "cgroup.controllers")).split()


@pytest.fixture
def cgroup() -> Iterator[Tuple[str, int, str]]:
    """A child memory cgroup of ours: (its directory, version, the limit file's name)."""
    with _child_cgroup("memory", "fphead", ("memory.limit_in_bytes", "memory.max")) as (directory, version):
        yield directory, version, "memory.max" if version == 2 else "memory.limit_in_bytes"


def _usage(directory: str, version: int) -> int:
    return int(_text(os.path.join(directory, "memory.current" if version == 2 else "memory.usage_in_bytes")))


def test_a_target_close_to_its_memory_limit_is_refused_and_left_alone(cgroup: Tuple[str, int, str]) -> None:
    directory, version, limit = cgroup
    target: RunningTarget = start_target(PYTHON, "service_target.py", "sleep")
    try:
        _write(os.path.join(directory, "cgroup.procs"), str(target.pid))
        tasks = len(os.listdir("/proc/%d/task" % target.pid))
        _write(os.path.join(directory, limit), str(_usage(directory, version) + (4 << 20)))
        refused = cli(target.pid, "getglobal __main__ __name__", timeout=60)
        assert refused.returncode != 0
        error = " ".join(refused.errors) or refused.stderr
        assert "left under its cgroup's memory limit" in error and "use --force to attach anyway" in error, (
            refused.stdout,
            refused.stderr,
        )
        assert directory in error
        # ps says the same of it, before anyone tries
        listed = subprocess.run(
            [sys.executable, "-m", "flight_profiler", "ps", str(target.pid), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        [entry] = json.loads(listed.stdout.splitlines()[-1])["result"]["processes"]
        assert entry["attachable"] is False and "left under its cgroup's memory limit" in entry["reason"], entry
        assert target.proc.poll() is None and len(os.listdir("/proc/%d/task" % target.pid)) == tasks
        _write(os.path.join(directory, limit), str(1 << 30))
        answer = cli(target.pid, "getglobal __main__ __name__", timeout=60)
        assert answer.returncode == 0, (answer.stdout, answer.stderr)
        assert cli(target.pid, "detach").returncode == 0
        assert target.proc.poll() is None
    finally:
        target.stop()


@pytest.fixture
def freezer() -> Iterator[Tuple[str, int]]:
    """A child freezer cgroup of ours (v1 ``freezer.state`` or v2 ``cgroup.freeze``): (directory, version)."""
    with _child_cgroup("freezer", "fphfrz", ("freezer.state", "cgroup.freeze")) as made:
        yield made
        _freeze(made[0], made[1], False)


def _freeze(directory: str, version: int, frozen: bool) -> None:
    if version == 1:
        _write(os.path.join(directory, "freezer.state"), "FROZEN" if frozen else "THAWED")
    else:
        _write(os.path.join(directory, "cgroup.freeze"), "1" if frozen else "0")


def _ps_reason(pid: int) -> object:
    listed = subprocess.run(
        [sys.executable, "-m", "flight_profiler", "ps", str(pid), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    [entry] = json.loads(listed.stdout.splitlines()[-1])["result"]["processes"]
    return entry["reason"]


def test_a_frozen_target_is_said_to_be_frozen_at_once(freezer: Tuple[str, int]) -> None:
    """docker pause: a frozen process cannot even stop for ptrace; the attach waited out --timeout and said
    "did not stop within the timeout (uninterruptible sleep?)", and a running agent could not answer."""
    directory, version = freezer
    fresh = start_target(PYTHON, "service_target.py", "sleep")
    attached = start_target(PYTHON, "service_target.py", "sleep")
    try:
        assert cli(attached.pid, "getglobal __main__ __name__", timeout=60).returncode == 0  # its agent runs
        for target in (fresh, attached):
            _write(os.path.join(directory, "cgroup.procs"), str(target.pid))
        _freeze(directory, version, True)
        assert wait_until(lambda: headroom.frozen(fresh.pid) is not None, timeout=10)
        for target in (fresh, attached):
            refused = cli(target.pid, "getglobal __main__ __name__", "--timeout", "60", timeout=50)
            error = " ".join(refused.errors) or refused.stderr
            assert refused.returncode != 0 and "is frozen by its cgroup's freezer (%s" % directory in error, error
            assert "is frozen" in str(_ps_reason(target.pid))
        _freeze(directory, version, False)
        for target in (fresh, attached):
            assert cli(target.pid, "getglobal __main__ __name__", timeout=60).returncode == 0
            assert cli(target.pid, "detach").returncode == 0
    finally:
        _freeze(directory, version, False)
        fresh.stop()
        attached.stop()


@pytest.fixture
def cpu_cgroup() -> Iterator[Tuple[str, int]]:
    """A child CPU cgroup of ours: (directory, version)."""
    with _child_cgroup("cpu", "fphcpu", ("cpu.cfs_quota_us", "cpu.max")) as made:
        yield made


def test_a_heap_walk_under_a_cpu_quota_takes_a_quarter_of_it(cpu_cgroup: Tuple[str, int]) -> None:
    """A pod limited to half a CPU: the walk's 4 ms slices with 1 ms pauses took ~80 % of a CPU, charged to
    the program's cgroup, whose threads then all waited for the next period; now it pauses 28 ms."""
    directory, version = cpu_cgroup
    target = start_target(PYTHON, "service_target.py", "sleep")
    try:
        _write(os.path.join(directory, "cgroup.procs"), str(target.pid))
        if version == 2:
            _write(os.path.join(directory, "cpu.max"), "50000 100000")
        else:
            _write(os.path.join(directory, "cpu.cfs_period_us"), "100000")
            _write(os.path.join(directory, "cpu.cfs_quota_us"), "50000")
        result = cli(target.pid, "mem summary", timeout=120)
        assert result.returncode == 0, (result.stdout, result.stderr)
        pacing = result.results[-1]["pacing"]
        assert pacing["cpu_quota"] == 0.5 and pacing["pause_ms"] == 28.0, pacing
        assert cli(target.pid, "detach").returncode == 0
    finally:
        target.stop()


def test_a_target_the_oom_killer_ends_is_said_to_have_been_oom_killed(cgroup: Tuple[str, int, str]) -> None:
    """A leak in a container: the target dies under a running watch; "pid N exited" said nothing of why."""
    directory, version, limit = cgroup
    target = start_target(PYTHON, "hostile_target.py", "oom")
    watch = None
    try:
        _write(os.path.join(directory, "cgroup.procs"), str(target.pid))
        _write(os.path.join(directory, limit), str(1 << 30))
        watch = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flight_profiler",
                str(target.pid),
                "--json",
                "--cmd",
                "watch __main__ tick -n 100000",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert watch.stdout is not None
        assert '"kind": "start"' in watch.stdout.readline()
        _write(os.path.join(directory, limit), str(_usage(directory, version) + (32 << 20)))
        os.kill(target.pid, signal.SIGUSR2)
        out, err = watch.communicate(timeout=60)
        error = json.loads(out.splitlines()[-1]).get("error", "") if out.strip() else err
        assert "pid %d exited - the kernel's OOM killer ran in its cgroup meanwhile (" % target.pid in error, (out, err)
        assert target.proc.wait(10) == -signal.SIGKILL
    finally:
        if watch is not None and watch.poll() is None:
            watch.kill()
            watch.wait(10)
        target.stop()


def test_a_target_at_its_cgroups_task_limit_is_refused(cgroup_pids: Tuple[str, int]) -> None:
    """pids.max reached: our thread could not start (the attach waited out --timeout), and had it started
    it would have taken the place of the program's next thread."""
    directory, _ = cgroup_pids
    target = start_target(PYTHON, "service_target.py", "sleep")
    try:
        _write(os.path.join(directory, "cgroup.procs"), str(target.pid))
        current = int(_text(os.path.join(directory, "pids.current")))
        _write(os.path.join(directory, "pids.max"), str(current + 1))
        refused = cli(target.pid, "getglobal __main__ __name__", timeout=60)
        error = " ".join(refused.errors) or refused.stderr
        assert refused.returncode != 0 and "'s cgroup allows 1 more task(s) (pids.max %d" % (current + 1) in error, (
            error
        )
        # forced: the agent's thread takes the last task, and its session has none; then a job has none
        # (both were "lost the connection to the agent", the session dropped)
        forced = cli(target.pid, "getglobal __main__ __name__", "--force", timeout=60)
        said = " ".join(forced.errors) or forced.stderr
        assert forced.returncode != 0 and "could not start a thread for this session (RuntimeError" in said, said
        _write(os.path.join(directory, "pids.max"), str(int(_text(os.path.join(directory, "pids.current"))) + 1))
        assert cli(target.pid, "getglobal __main__ __name__", timeout=60).returncode == 0  # a quick one: no thread
        job = cli(target.pid, "watch __main__ main_body -n 1", timeout=60)
        said = " ".join(job.errors) or job.stderr
        assert job.returncode != 0 and "could not start a thread for watch (job 1)" in said, said
        _write(os.path.join(directory, "pids.max"), "max")
        assert cli(target.pid, "getglobal __main__ __name__", timeout=60).returncode == 0
        assert cli(target.pid, "detach").returncode == 0
    finally:
        target.stop()


@pytest.fixture
def cgroup_pids() -> Iterator[Tuple[str, int]]:
    with _child_cgroup("pids", "fphpid", ("pids.max", "pids.max")) as made:
        yield made


def _status(pid: int) -> dict[str, str]:
    with open("/proc/%d/status" % pid) as fh:
        return {key: value.strip() for key, _, value in (line.partition(":") for line in fh)}


def test_a_seccomp_read_that_meets_a_frozen_thread_never_leaves_it_stopped(
    freezer: Tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The filter is read while the main thread is stopped; one that stops only after the wait gave up
    (frozen, uninterruptible) must not stay in a ptrace stop for as long as the client lives (a shell)."""
    from flight_profiler.attach.injector import seccomp

    if os.geteuid() != 0:
        pytest.skip("reading a seccomp filter needs root")
    directory, version = freezer
    target = start_target(PYTHON, "hostile_target.py", "mountkill")  # a filter (Seccomp: 2) that never bites us
    try:
        _write(os.path.join(directory, "cgroup.procs"), str(target.pid))
        _freeze(directory, version, True)
        assert wait_until(lambda: headroom.frozen(target.pid) is not None, timeout=10)
        monkeypatch.setattr(seccomp, "STOP_WAIT", 0.2)
        assert seccomp.filters(target.pid) == []  # it did not stop in time: nothing read
        _freeze(directory, version, False)
        assert wait_until(lambda: _status(target.pid)["TracerPid"] == "0", timeout=10), _status(target.pid)
        time.sleep(0.5)  # a pending stop would have been taken by now
        status = _status(target.pid)
        assert status["TracerPid"] == "0" and not status["State"].startswith("t"), status
        assert target.healthy()
    finally:
        _freeze(directory, version, False)
        target.stop()
