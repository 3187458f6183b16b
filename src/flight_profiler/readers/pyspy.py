"""Run the py-spy binary that ships in our own install (client side).

py-spy reads the target's memory from outside, so it answers even when the GIL
is stuck or injection is impossible. It is found next to our interpreter (the
wheel puts it in the same bin/ folder), whatever the user's PATH says.
"""

from __future__ import annotations

import json
import os
import re
import sys
import sysconfig
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

if TYPE_CHECKING:
    import subprocess

from ..errors import TargetError

DUMP_TIMEOUT = 20.0


def executable() -> str:
    candidates = [
        os.path.join(os.path.dirname(sys.executable), "py-spy"),
        os.path.join(sysconfig.get_path("scripts"), "py-spy"),
    ]
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    import shutil

    found = shutil.which("py-spy")
    if found:
        return found
    raise TargetError("py-spy is missing from this install; reinstall flight_profiler (it depends on py-spy)")


def require_process(pid: int) -> None:
    """Say a pid that names no process as the attach does; py-spy's word for it is "Failed to get
    process executable name. Check that the process is running." """
    if not os.path.exists("/proc/%d" % pid):
        raise TargetError("no process with pid %d" % pid)


def require_stoppable(pid: int) -> None:
    """Before py-spy stops ``pid`` to read it (dump without --nonblocking, record): refuse, with the
    attach's own reason, a process that is stopped by job control, traced by another tool or gone.

    Asked before, not only after py-spy failed: when py-spy lets go of a stopped process, the kernel
    wakes it for an instant to stop it again, so a look afterwards can find it running (1 in 30 here)."""
    from ..attach import procfs
    from ..errors import AttachError

    require_process(pid)
    try:
        procfs.check_attachable(pid)
    except AttachError as exc:
        raise TargetError(str(exc)) from None  # a TargetError: an agent already there may answer instead


def explain_refusal(pid: int) -> None:
    """After py-spy failed: raise the attach's own one-line reason when the process has exited meanwhile,
    is stopped (job control), is traced by another tool, or the kernel keeps its memory maps from us
    (py-spy's words for these: "Failed to get process executable name. Check that the process is
    running.", "Failed to get stack traces"); return otherwise."""
    from ..attach import procfs

    require_stoppable(pid)  # has exited / no process / stopped (kill -CONT) / traced by pid N
    try:
        with open("/proc/%d/maps" % pid, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise TargetError("cannot read /proc/%d/maps: %s" % (pid, procfs.permission_hint(pid))) from None
    except OSError:
        return  # gone just now, or another failure: py-spy's own message says what it saw


def dump(pid: int, native: bool = False, nonblocking: bool = False) -> list[dict[str, Any]]:
    """All threads' stacks as py-spy's JSON (innermost frame first).

    ``nonblocking``: read while the target runs (py-spy otherwise stops every thread while it reads: ~80 ms
    at 200 threads); for who holds the GIL, a state that lasts, not for stacks shown to a person.
    """
    import subprocess  # only commands that read from outside pay for it

    if nonblocking:
        require_process(pid)  # reads memory only: a stopped or traced process can be read
    else:
        require_stoppable(pid)

    argv = [executable(), "dump", "--pid", str(pid), "--json"]
    if native:
        argv.append("--native")
    if nonblocking:
        argv.append("--nonblocking")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=DUMP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise TargetError("py-spy did not answer within %.0f s" % DUMP_TIMEOUT) from None
    if proc.returncode != 0:
        explain_refusal(pid)
        raise TargetError("cannot read the stacks of pid %d: %s" % (pid, first_error_line(proc.stderr)))
    data = json.loads(proc.stdout)
    if not isinstance(data, list):
        raise TargetError("unexpected py-spy output")
    return data


def first_error_line(stderr: str) -> str:
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith("Error:"):
            return line[len("Error:") :].strip()
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[0] if lines else "py-spy failed"


# ------------------------------------------------------------------ record (perf)

# our format names -> py-spy's
RECORD_FORMATS = {
    "svg": "flamegraph",
    "speedscope": "speedscope",
    "raw": "raw",
    "collapsed": "raw",  # py-spy's raw output is the collapsed-stack format
    "chrometrace": "chrometrace",
}
STOP_WAIT = 60.0  # seconds py-spy gets to write its file once told to stop
# py-spy says this once it samples, and only then does Ctrl-C stop it cleanly: a SIGINT before its handler
# is in place (10-30 ms after its start here, over a second on a loaded host) kills it without a word or a
# file ("py-spy failed" for a `perf -d 1` in a loaded test run). The duration is counted from it.
STARTED = "py-spy> Sampling process"
START_WAIT = 30.0  # seconds py-spy gets to begin sampling
POLL = 0.25
START_POLL = 0.01
_PR_SET_PDEATHSIG = 1
_SAMPLES = re.compile(r"Samples: (\d+) Errors: (\d+)")


class Recording(NamedTuple):
    path: str
    samples: int
    errors: int
    seconds: float
    stopped: str  # "duration", "interrupted" (Ctrl-C) or "target exited"


def record(
    pid: int,
    path: str,
    fmt: str = "svg",
    rate: int = 100,
    duration: float | None = None,
    native: bool = False,
    idle: bool = False,
    progress: Callable[[float], None] | None = None,
) -> Recording:
    """Sample ``pid`` with ``py-spy record`` into ``path`` until ``duration`` or Ctrl-C.

    Ctrl-C (KeyboardInterrupt here) stops the sampling and still writes the file.
    py-spy runs in its own session, so only we tell it to stop, and it gets SIGINT
    if we die, so an unlimited recording never outlives us.
    """
    import subprocess
    import tempfile
    import time

    argv = [executable(), "record", "--pid", str(pid), "--output", path, "--format", RECORD_FORMATS[fmt]]
    argv += ["--rate", str(rate)]
    if native:
        argv.append("--native")
    if idle:
        argv.append("--idle")
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_stop_with_parent(),  # the CLI runs no other thread meanwhile
        )
        started, began = time.monotonic(), None
        try:
            began = _began(proc, log, pid)
            stopped = _sample(proc, began, duration, progress) if began is not None else "target exited"
        except KeyboardInterrupt:
            stopped = "interrupted"
            _stop(proc)
        seconds = time.monotonic() - (began or started)
        log.seek(0)
        output = log.read()
    if stopped == "interrupted" and STARTED not in output:
        raise TargetError("stopped before py-spy began sampling pid %d: nothing was recorded" % pid)
    return _recording(pid, path, proc.returncode, output, seconds, stopped)


def _began(proc: subprocess.Popen[bytes], log: Any, pid: int) -> float | None:
    """When py-spy said it samples (monotonic); None when it ended before (its output says why).

    Until then it is not told to stop (see STARTED); within START_WAIT, or it is stopped and that said."""
    import time

    deadline = time.monotonic() + START_WAIT
    while proc.poll() is None:
        if STARTED in _head(log):
            return time.monotonic()
        if time.monotonic() >= deadline:
            _stop(proc)
            said = [line.strip() for line in _head(log).splitlines() if line.strip()]
            raise TargetError(
                "py-spy did not begin sampling pid %d within %.0f s (%s)"
                % (pid, START_WAIT, "it said: " + said[-1][:200] if said else "it printed nothing")
            )
        time.sleep(START_POLL)
    return None


def _head(log: Any) -> str:
    """What py-spy has printed so far (its first 64 kB), read without moving the file offset that it
    shares with us: a seek and read here could move its next write back over what it wrote."""
    return os.pread(log.fileno(), 1 << 16, 0).decode("utf-8", "replace")


def _sample(
    proc: subprocess.Popen[bytes],
    started: float,
    duration: float | None,
    progress: Callable[[float], None] | None,
) -> str:
    """Wait while py-spy samples; stop it at ``duration``. Returns why sampling stopped."""
    import time

    while proc.poll() is None:
        elapsed = time.monotonic() - started
        if duration is not None and elapsed >= duration:
            _stop(proc)
            return "duration"
        if progress is not None:
            progress(elapsed)
        time.sleep(POLL if duration is None else max(0.0, min(POLL, duration - elapsed)))
    return "target exited"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask py-spy to stop and write its file; a second Ctrl-C gives up on the file."""
    import signal
    import subprocess

    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(STOP_WAIT)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
        raise KeyboardInterrupt() from None


def _recording(pid: int, path: str, returncode: int | None, output: str, seconds: float, stopped: str) -> Recording:
    found = _SAMPLES.search(output)
    if returncode != 0 or found is None or not os.path.exists(path):
        if "process exited" in output or "No such process" in output:
            raise TargetError("pid %d exited before anything was sampled" % pid)
        if found is not None and found.group(1) == "0":
            raise TargetError("no samples collected from pid %d (stopped after %.1f s)" % (pid, seconds))
        if "No stack counts found" in output:  # py-spy skips idle threads: a sleeping process gives it nothing
            raise TargetError(
                "no samples from pid %d in %.1f s: its threads were idle (--idle samples idle threads too)"
                % (pid, seconds)
            )
        explain_refusal(pid)
        raise TargetError("cannot sample pid %d: %s" % (pid, first_error_line(_without_banner(output))))
    return Recording(path, int(found.group(1)), int(found.group(2)), seconds, stopped)


def _without_banner(output: str) -> str:
    return "\n".join(line for line in output.splitlines() if not line.startswith("py-spy>"))


def _stop_with_parent() -> Callable[[], None]:
    """A preexec_fn that makes the kernel send py-spy SIGINT when we die (Linux)."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return lambda: None
    prctl = libc.prctl

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0)

    return set_death_signal
