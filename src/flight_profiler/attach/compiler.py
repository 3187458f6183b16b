"""The agent's start set compiled for a target of another minor version, by that target's own
interpreter, outside the target (client side; runs in the privsep helper).

Why: a target of our own minor version gets its start set as bytecode we compiled (``bundle``);
any other compiled it itself, 20-30 ms of its CPU in one C call with the GIL held (its threads stall
that long), once per target: 32 workers paid it 32 times (bench/RESULTS-fleet.md). Its own binary,
run here once per interpreter file, makes exactly the bytecode it would have made, and the target
only unmarshals it (about 1 ms). The bootstrap still checks the magic number and ``-O``, and
compiles the source when either differs, as before.

Who runs it, and as whom: the helper that works in the target user's directory, with that user's
credentials (as ``sys.remote_exec`` is run): the binary is then run by the user whose process it
already is, which gains that user nothing. Where those credentials are root's (a root target), the
binary runs only if it, the directories above it and its standard library's belong to root (or to
us) and nobody else may write them: root never runs a binary or library another user controls.
Isolated (``-I -S -B``), an empty environment, from ``/``, stdin a private memory file; its output
is bounded in size and time and checked for shape. We never load what it prints: it is hex that
goes into the bundle, which only that user's target reads.
"""

from __future__ import annotations

import os
import re
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

# The program the target's interpreter runs (Python 3.8 syntax, builtins and frozen modules only):
# stdin holds file name, source, file name, source, ... NUL-separated; stdout the interpreter's magic
# number, then each module's code object marshalled, one hex line each, in the order given.
PROGRAM = (
    "import sys, marshal\n"
    "parts = sys.stdin.buffer.read().decode('utf-8').split('\\0')\n"
    "out = [sys.modules['_frozen_importlib_external'].MAGIC_NUMBER.hex()]\n"
    "for at in range(0, len(parts) - 1, 2):\n"
    "    code = compile(parts[at + 1], parts[at], 'exec', dont_inherit=True, optimize=0)\n"
    "    out.append(marshal.dumps(code).hex())\n"
    "sys.stdout.write('\\n'.join(out))\n"
)

OUTPUT_LIMIT = 6 << 20  # about 0.5 MB for our start set: a bound on what a bad binary could print
TIMEOUT = 5.0
_HEX = re.compile(r"[0-9a-f]*\Z")


class CompileFailed(Exception):
    """The start set could not be compiled outside the target: the message says why, in one line."""


def compile_sources(exe: str, sources: list[tuple[str, str]], timeout: float) -> tuple[str, list[str]]:
    """(magic number, code per source) in hex, from ``exe`` run as ``PROGRAM``."""
    import subprocess

    payload = "\0".join(part for pair in sources for part in pair).encode("utf-8")
    stdin = os.memfd_create("flight_profiler-sources", os.MFD_CLOEXEC)  # no file of ours to name or clean up
    try:
        os.write(stdin, payload)  # (a memfd takes it in one write)
        os.lseek(stdin, 0, os.SEEK_SET)
        argv = [exe, "-I", "-S", "-B", "-c", PROGRAM]
        try:
            proc = subprocess.Popen(
                argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={}, cwd="/", close_fds=True
            )
        except OSError as exc:
            raise CompileFailed("cannot run %s: %s" % (exe, exc.strerror or exc)) from None
    finally:
        os.close(stdin)
    output = _bounded_output(proc, timeout)
    return _parsed(output, len(sources))


def _bounded_output(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """Everything ``proc`` prints, read until it exits; killed past ``timeout`` or ``OUTPUT_LIMIT``."""
    import select
    import subprocess
    import time

    assert proc.stdout is not None  # (Popen with stdout=PIPE)
    chunks: list[bytes] = []
    size, deadline, fd = 0, time.monotonic() + timeout, proc.stdout.fileno()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CompileFailed("the interpreter did not compile within %.1f s" % timeout)
            if not select.select([fd], [], [], left)[0]:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > OUTPUT_LIMIT:
                raise CompileFailed("the interpreter printed more than %d bytes" % OUTPUT_LIMIT)
            chunks.append(chunk)
        if proc.wait(max(0.1, deadline - time.monotonic())) != 0:
            raise CompileFailed("the interpreter failed (exit status %d)" % proc.returncode)
    except subprocess.TimeoutExpired:
        raise CompileFailed("the interpreter did not exit within %.1f s" % timeout) from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return b"".join(chunks)


def _parsed(output: bytes, count: int) -> tuple[str, list[str]]:
    try:
        lines = output.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise CompileFailed("the interpreter printed something other than hex") from None
    return checked(lines[0], lines[1:], count)


def checked(magic: object, codes: object, count: int) -> tuple[str, list[str]]:
    """A magic number and ``count`` codes, each hex only (they go into a NUL-separated bundle), or
    CompileFailed. Checked where they are made and again by the client: the helper that sends them
    runs as the target's user, who may change what it says."""
    if (
        not isinstance(magic, str)
        or not isinstance(codes, list)
        or len(codes) != count
        or len(magic) != 8
        or not all(isinstance(code, str) and _HEX.match(code) for code in [magic, *codes])
    ):
        raise CompileFailed("the interpreter's output has not the expected shape")
    return magic, codes


# ---------------------------------------------------------------------- which binary, and as root whose

_INTERPRETER_NAME = re.compile(r"python[0-9]*(\.[0-9]+)?[a-z]?\Z")


def interpreter_path(pid: int) -> str:
    """The path of ``pid``'s binary if it is named as a Python interpreter is (``python``, ``python3``,
    ``python3.12``, ``python3.12d``); CompileFailed otherwise. An application that embeds Python
    (uwsgi, a game, an editor) is its own program: run with an interpreter's options, it would do
    whatever that program does with them."""
    try:
        path = os.readlink("/proc/%d/exe" % pid)
    except OSError as exc:
        raise CompileFailed("cannot read the interpreter of pid %d: %s" % (pid, exc.strerror or exc)) from None
    name = os.path.basename(path[: -len(" (deleted)")] if path.endswith(" (deleted)") else path)
    if not _INTERPRETER_NAME.match(name):
        raise CompileFailed(
            "pid %d runs %s, not a python interpreter (Python embedded in an application)" % (pid, name)
        )
    return path


# ---------------------------------------------------------------------- root runs only root's binaries


def interpreter_root_may_run(pid: int, version: tuple[int, int]) -> str:
    """The path of ``pid``'s interpreter if nobody but root (or we) can change it or its standard
    library; CompileFailed otherwise. Its path, not /proc/<pid>/exe: the pid may be reused by now,
    and the path is what was checked (nobody else can change what it names)."""
    link = "/proc/%d/exe" % pid
    path = interpreter_path(pid)
    if path.endswith(" (deleted)"):  # (the kernel's word for a file no longer in any directory)
        raise CompileFailed("%s is no longer the file pid %d runs (replaced or deleted)" % (path[:-10], pid))
    try:
        running, named = os.stat(link), os.stat(path)
    except OSError as exc:
        raise CompileFailed("cannot read the interpreter of pid %d: %s" % (pid, exc.strerror or exc)) from None
    if (running.st_dev, running.st_ino) != (named.st_dev, named.st_ino):
        raise CompileFailed("%s is no longer the file pid %d runs (replaced or deleted)" % (path, pid))
    _check_owned(path, file=True)
    prefix = os.path.dirname(os.path.dirname(path))
    stdlib = os.path.join(prefix, "lib", "python%d.%d" % version)
    if not os.path.isfile(os.path.join(stdlib, "os.py")):  # where it looks first: else a built-in prefix
        raise CompileFailed("no standard library next to %s (%s)" % (path, stdlib))
    for directory in (stdlib, os.path.join(stdlib, "encodings")):  # what an isolated start reads
        _check_owned(directory, file=False)
        cache = os.path.join(directory, "__pycache__")
        if os.path.isdir(cache):
            _check_owned(cache, file=False)
    return path


def _check_owned(path: str, file: bool) -> None:
    """``path``, each directory above it, and (through links) where it leads, belong to root or to us,
    and no one else may write them (a sticky directory excepted: others may add entries to it, not
    replace ours). The path as given is walked without following links (a link is judged as itself,
    in its directory), then the path they lead to."""
    for walked in (path, os.path.realpath(path)):
        top = walked
        while True:
            info = os.lstat(walked)
            if info.st_uid not in (0, os.geteuid()):
                raise CompileFailed("%s belongs to uid %d: not run as root" % (walked, info.st_uid))
            if not stat.S_ISLNK(info.st_mode) and others_may_write(info, walked == top and file):
                raise CompileFailed("others may write %s: not run as root" % walked)
            parent = os.path.dirname(walked)
            if parent == walked:
                break
            walked = parent


def others_may_write(info: os.stat_result, file: bool) -> bool:
    """Someone but root or us may change what is in it: its group's members (other than root's group
    and ours) or anyone; a sticky directory only lets them add entries, not replace ours."""
    writable = info.st_mode & 0o002 or (info.st_mode & 0o020 and info.st_gid not in (0, os.getegid()))
    return bool(writable) and (file or not info.st_mode & stat.S_ISVTX)
