"""The process that holds gilstat's frida session (client side, a process of our own).

frida's session belongs to the process that attached. Held by the client, a client killed while
the hooks were in left them to frida's agent, which takes them out by itself as soon as it sees
its host gone, with the target's threads running: a rewrite under a running thread is what
``Probe._patch`` stops the threads for (unpaused cycles killed about 1 churning target in 400).
So the client starts this process, in a session of its own (the terminal's Ctrl-C and a kill of
the client's process group do not reach it), and talks to it over a pipe: it hooks, reads the
counters when asked, and unhooks with the threads stopped when asked to stop **or when the pipe
closes**: the client's SIGKILL included. Then it removes frida's helper files and exits.

The client runs it with its own interpreter (``sys.executable -I``: no environment variable or
user site decides what it imports) and our own package directory first on its path: nothing of
the target's or of another user's is executed.

frida unpacks its helper (about 10 MB) into ``$TMPDIR/frida-*`` and never removes it. The host
runs with ``TMPDIR`` set to a directory of its own (``mkdtemp``: 0700, a new name) and removes
that whole directory when it ends; the client removes it too if the host was killed, and the
next gilstat of the same user removes any whose host and client were both killed (the host holds a
lock in it for its whole life: ``remove_stale``). So nothing
is ever removed from a shared ``/tmp`` by pattern: another gilstat's helper, or another user's
``frida-*`` directory, is not ours to touch (a client running as root would have removed them).

Protocol: JSON lines. The client writes the start (pid, functions, thresholds); the host answers
``{"started": [threads, seconds, late]}`` or ``{"error": ..., "target": bool}``. Then ``"read"``
gets ``{"data": HEX}`` (the counters block, parsed by the client) and ``"stop"`` gets
``{"stopped": [inside, unhook_seconds, unpaused]}``, after which the host exits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import IO, Any

from ...errors import CommandError, TargetError
from . import probe

MARK = "flight_profiler-gilstat-host"  # in its command line: tests (and ps) tell it apart
# what the host's interpreter runs: our package's parent first on the path, then the loop below
_BOOT = "import sys; sys.path.insert(0, sys.argv[3]); from flight_profiler.commands.gilstat.host import serve; serve()"
TEMP_PREFIX = "flight_profiler-gilstat-"  # the host's own temp directory, frida's helper files inside
LOCK_NAME = "host.lock"  # in that directory: locked by the host for as long as it lives
STALE_UNLOCKED = 60.0  # seconds after which a directory that never got its lock file is left over


class HostedProbe:
    """``probe.Probe``'s interface, over a pipe to the host process that holds the hooks."""

    def __init__(self, pid: int, functions: probe.GilFunctions, take_ms: float, hold_ms: float) -> None:
        from ...attach.bootstrap import package_dir

        package_parent = os.path.dirname(package_dir())
        parent = _temp_parent()
        remove_stale(parent)
        self._temp = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent)
        try:
            lock = _lock(self._temp)
            try:
                self._proc = subprocess.Popen(  # our own interpreter and package, fixed arguments
                    [sys.executable, "-I", "-c", _BOOT, MARK, str(pid), package_parent, self._temp, str(lock)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=(lock,),
                )
            finally:
                os.close(lock)  # the host's copy holds the lock now, for as long as the host lives
        except BaseException:
            shutil.rmtree(self._temp, ignore_errors=True)
            raise
        self.unhook_seconds = 0.0
        self.unpaused = 0
        self._warnings_read = 0
        self._stopped: int | None = None
        start = {"pid": pid, "path": functions.path, "take": functions.take, "drop": functions.drop}
        try:
            reply = self._ask(dict(start, take_ms=take_ms, hold_ms=hold_ms), "started")
        except BaseException:
            self._close()  # a host that could not hook has ended (or ends now: its pipe closes)
            raise
        self.hook_pause = probe.Pause(int(reply[0]), float(reply[1]), bool(reply[2]))

    def read(self) -> probe.Reading:
        data = bytes.fromhex(str(self._ask("read", "data")))
        reading = probe.parse(data, self._warnings_read)
        self._warnings_read = reading.warnings_written
        return reading

    def stop(self) -> int:
        """Unhook (in the host, threads stopped); what ``Probe.stop`` returns. Idempotent."""
        if self._stopped is None:
            try:
                inside, seconds, unpaused = self._ask("stop", "stopped")
                self._stopped, self.unhook_seconds, self.unpaused = int(inside), float(seconds), int(unpaused)
            except (CommandError, TargetError, ValueError):
                self._stopped = 0
                self.unpaused += 1  # the host ended first: frida's agent took the hooks out by itself
            self._close()
        return self._stopped

    def _ask(self, request: Any, key: str) -> Any:
        """Send ``request``; the reply's ``key``, skipping the reply to an earlier request a Ctrl-C cut off."""
        stdin, stdout = self._proc.stdin, self._proc.stdout
        if stdin is None or stdout is None or stdin.closed:
            raise CommandError("lost the GIL probe: its host process ended")
        try:
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.flush()
        except OSError:
            pass  # the host has ended: its output says why, or ends
        while True:
            line = stdout.readline()
            if not line:
                self._close()
                raise CommandError("lost the GIL probe: its host process ended")
            reply = json.loads(line)
            if "error" in reply:  # the host goes on (a failed read) or has ended (a failed start)
                raise (TargetError if reply.get("target") else CommandError)(str(reply["error"]))
            if key in reply:
                return reply[key]

    def _close(self) -> None:
        """Our end of the pipe closes: a host that has not stopped unhooks now, and exits."""
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        try:
            self._proc.wait(probe.UNHOOK_WAIT + 2.0)
        except subprocess.TimeoutExpired:
            return  # it ends on its own (bounded by UNHOOK_WAIT and the unload's wait), removing its directory
        shutil.rmtree(self._temp, ignore_errors=True)  # the host removed it, unless it was killed


def _lock(temp: str) -> int:
    """A descriptor of ``temp``'s lock file, locked: the host inherits it and holds the lock until it ends."""
    import fcntl

    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(os.path.join(temp, LOCK_NAME), flags, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def remove_stale(parent: str) -> None:
    """Remove the temp directories of our user's hosts that were killed together with their client.

    A host's directory is live while its lock is held (by the host, for its whole life). One whose
    lock can be taken is left over: its host was SIGKILLed, and its client too before it could remove
    it (the OOM killer, a ``kill -9`` of both). Only directories of ours are looked at: owned by us,
    mode 0700, opened without following links. One with no lock file yet is being made, unless old.
    """
    try:
        names = [name for name in os.listdir(parent) if name.startswith(TEMP_PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(parent, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if _left_over(fd):
                shutil.rmtree(path, ignore_errors=True)  # fd-based on Linux: links inside are not followed
        finally:
            os.close(fd)


def _left_over(dir_fd: int) -> bool:
    import fcntl
    import stat
    import time

    st = os.fstat(dir_fd)
    if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) != 0o700:
        return False
    try:
        lock = os.open(LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return time.time() - st.st_mtime > STALE_UNLOCKED
    except OSError:
        return False
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:  # held: its host lives
        return False
    finally:
        os.close(lock)


def _temp_parent() -> str:
    """Where the host's directory goes: the usual temp directory, unless another user could rename
    things on the way to it (a ``TMPDIR`` a root client inherited from someone else): then ``/tmp``."""
    from ...errors import UsageError
    from ..outfile import vet_path

    parent = tempfile.gettempdir()
    try:
        vet_path(os.path.join(parent, TEMP_PREFIX))  # the output files' rule: root's or ours, sticky if shared
    except UsageError:
        return "/tmp"
    return parent


# ---------------------------------------------------------------- in the host process


def serve() -> None:
    """The host's life: hook, answer reads, unhook on "stop" or when the client's end closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's: it then asks us to stop
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    temp = sys.argv[4]  # ours (the client made it): frida's helper files go there, before frida starts
    os.environ["TMPDIR"] = tempfile.tempdir = temp
    os.set_inheritable(int(sys.argv[5]), False)  # its lock, held while we live (not by frida's helpers)
    try:
        _serve()
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _serve() -> None:
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")  # the protocol's own descriptor: whatever else prints to stdout goes nowhere
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    hooks = _start(inp, out)
    if hooks is None:
        return
    inside = 0
    try:
        for line in iter(inp.readline, b""):
            if json.loads(line) == "stop":
                break
            _send(out, _read(hooks))
    except (OSError, ValueError):
        pass  # the client went away mid-line: stop as if it had asked
    finally:
        inside = hooks.stop()
    _send(out, {"stopped": [inside, hooks.unhook_seconds, hooks.unpaused]})


def _start(inp: IO[bytes], out: IO[bytes]) -> probe.Probe | None:
    try:
        start = json.loads(inp.readline())
        functions = probe.GilFunctions(str(start["path"]), list(start["take"]), list(start["drop"]))
        hooks = probe.Probe(probe.import_frida(), int(start["pid"]), functions, start["take_ms"], start["hold_ms"])
    except (TargetError, CommandError) as exc:
        _send(out, {"error": str(exc), "target": isinstance(exc, TargetError)})
        return None
    except Exception as exc:  # noqa: BLE001 - the client shows one line, never our traceback
        _send(out, {"error": "gilstat's probe could not start: %s: %s" % (type(exc).__name__, exc)})
        return None
    pause = hooks.hook_pause
    _send(out, {"started": [pause.threads, pause.seconds, pause.late]})
    return hooks


def _read(hooks: probe.Probe) -> dict[str, Any]:
    try:
        return {"data": hooks.read_raw().hex()}
    except CommandError as exc:
        return {"error": str(exc)}


def _send(out: IO[bytes], reply: dict[str, Any]) -> None:
    try:
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()
    except OSError:
        pass  # the client is gone: the hooks come out all the same
