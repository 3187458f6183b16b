"""The pure parts of process discovery: families, roles and the attach verdict."""

from __future__ import annotations

import os
import sys
import time

import pytest

from flight_profiler.attach.target import check_remote_debug_allowed
from flight_profiler.discovery import processes
from flight_profiler.discovery.processes import Caller, PythonProcess, link_families, roots
from flight_profiler.errors import TargetError
from flight_profiler.readers import proctasks


def proc(pid: int, ppid: int, cmdline: str) -> PythonProcess:
    return PythonProcess(
        pid=pid,
        ppid=ppid,
        uid=0,
        user="root",
        python="3.11",
        cmdline=cmdline,
        attachable=True,
        reason=None,
        agent=False,
        container=False,
    )


def test_gunicorn_and_uvicorn_trees() -> None:
    found = [
        proc(10, 1, "/venv/bin/python /venv/bin/gunicorn app:app -w 2"),
        proc(11, 10, "/venv/bin/python /venv/bin/gunicorn app:app -w 2"),
        proc(12, 10, "/venv/bin/python /venv/bin/gunicorn app:app -w 2"),
        proc(20, 1, "python -m uvicorn app:app --workers 2"),
        proc(21, 20, "python -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5)"),
        proc(30, 1, "python other.py"),
    ]
    link_families(found)
    roles = {p.pid: p.role for p in found}
    assert roles == {
        10: "gunicorn master",
        11: "gunicorn worker",
        12: "gunicorn worker",
        20: "uvicorn supervisor",
        21: "multiprocessing worker",
        30: None,
    }
    assert found[0].children == [11, 12]
    assert [p.pid for p in roots(found)] == [10, 20, 30]


def test_setproctitle_names_and_unknown_parents() -> None:
    found = [proc(10, 1, "gunicorn: master [app:app]"), proc(11, 10, "gunicorn: worker [app:app]")]
    found.append(proc(40, 1, "python launcher.py"))
    found.append(proc(41, 40, "python child.py"))
    link_families(found)
    assert [p.role for p in found] == ["gunicorn master", "gunicorn worker", None, None]
    assert found[2].children == [41]


def test_yama_and_uid_verdicts() -> None:
    me = os.getpid()
    version = sys.version_info[:2]
    assert processes._why_not(me, version, os.getuid(), Caller(os.getuid(), True, None)) is None
    other = processes._why_not(me, version, os.getuid() + 1, Caller(os.getuid(), False, None))
    assert other is not None and "you are uid %d" % os.getuid() in other
    scoped = processes._why_not(me, version, os.getuid(), Caller(os.getuid(), False, 1))
    assert scoped is not None and "ptrace_scope is 1" in scoped
    assert processes._why_not(me, version, os.getuid(), Caller(os.getuid(), True, 1)) is None
    disabled = processes._why_not(me, version, os.getuid(), Caller(os.getuid(), True, 3))
    assert disabled is not None and "disabled until reboot" in disabled
    old = processes._why_not(me, (3, 7), os.getuid(), Caller(os.getuid(), True, None))
    assert old is not None and "3.7 is not supported" in old


def test_this_process_is_described_and_ourselves_left_out() -> None:
    me = processes.describe(os.getpid(), Caller.current())
    assert me is not None and me.python == "%d.%d" % sys.version_info[:2]
    assert os.getpid() not in {p.pid for p in processes.scan()}
    assert processes.describe(2**22 + 12345, Caller.current()) is None  # no such pid


def _zombie(pid: int) -> bool:
    with open("/proc/%d/stat" % pid) as fh:
        return fh.read().rpartition(")")[2].split()[0] == "Z"


def test_a_process_caught_exiting_is_gone_not_a_crash() -> None:
    """/proc/PID/environ of an exiting process raises ESRCH, not ENOENT (CI once caught `ps` there)."""
    child = os.fork()
    if child == 0:
        os._exit(0)
    try:
        # until it is a zombie: exited, not yet reaped (200 sched_yield()s were once too few on a loaded
        # host: the child had not exited yet, and the check found a live process)
        deadline = time.monotonic() + 30
        while not _zombie(child) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _zombie(child)
        with pytest.raises(TargetError, match="went away"):
            check_remote_debug_allowed(child)
        assert processes.describe(child, Caller.current()) is None
        assert isinstance(proctasks.sample(child), dict)
    finally:
        os.waitpid(child, 0)
