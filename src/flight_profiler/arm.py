"""The pre-armed agent: the application listens for us from its start, so no ptrace is ever needed.

For pods and hosts where ptrace is forbidden (restricted Pod Security, seccomp,
Yama, non-dumpable services), an application can opt in at start:

    python -m flight_profiler.arm app.py ARGS...      # or: ... arm -m package.module ARGS...
    FLIGHT_PROFILER_ARM=1 python app.py ARGS...       # with ``import flight_profiler.arm`` in app.py

Arming starts one daemon thread, ``flight_profiler-agent``, which loads the same
in-target modules an injected agent loads (from one bundle, under the private
alias ``_flight_profiler``, without the import system) and listens on the very
socket an injection would create: ``/tmp/flight_profiler-<uid>/agent-<pid ns>-<pid>-<start>.sock``
(``/dev/shm/...`` where ``/tmp`` is not usable, ``attach/places``) in a private
0700 directory, peer uid checked. ``flight_profiler <pid>`` finds it as it finds any running
agent (the reuse check comes before anything else) and never ptraces the target. Sessions and
job threads start only when a client connects, as with an injected agent. ``detach`` removes everything the session
did, unloads our modules and closes the socket; the thread then arms again (the
application asked to stay reachable), reloading on the next connection's behalf.

The application stays itself: ``sys.argv``, ``sys.path[0]``, ``__main__`` (a fresh
module named ``__main__`` running the script), exit codes (``SystemExit`` passes
through; an uncaught exception is shown by ``sys.excepthook`` without our frames and
exits 1), signal handlers and ``sys.excepthook`` are untouched. Our own modules
imported to arm (this one and the bundle collector) are removed from
``sys.modules`` again when the application runs through ``-m flight_profiler.arm``.
Not covered: processes forked after arming are not armed (each process arms itself).

Runs in the target: stdlib only, Python 3.8 syntax, no ``typing`` at run time.
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

ENV = "FLIGHT_PROFILER_ARM"
USAGE = "usage: python -m flight_profiler.arm (SCRIPT | -m MODULE) [ARGS...]"

_armed: "List[str]" = []  # the socket path, once armed (one listener per process)


def socket_path() -> "str":
    """The path the client computes for this process (``attach/paths``): same directory, same name."""
    with open("/proc/self/stat", "rb") as fh:
        text = fh.read()
    start = int(text[text.rfind(b")") + 2 :].split()[19])
    pid_ns = os.stat("/proc/self/ns/pid").st_ino
    from .attach.places import placed  # /dev/shm where our /tmp is read-only, as the client's helper decides

    directory = placed("/tmp/flight_profiler-%d" % os.getuid())
    return "%s/agent-%d-%d-%d.sock" % (directory, pid_ns, os.getpid(), start)


def arm() -> "str":
    """Start listening for flight_profiler in this process (once); returns the socket path."""
    if _armed:
        return _armed[0]
    gil_enabled = getattr(sys, "_is_gil_enabled", None)  # 3.13+
    if gil_enabled is not None and not gil_enabled():
        # as an attach refuses one (attach/target, injector/symbols): our walks and hooks read the program's
        # objects as one thread at a time would, which only the GIL makes true (PYTHON_GIL=1 turns it on)
        raise RuntimeError("a free-threaded build running without the GIL is not supported yet (docs/platforms.md)")
    from .attach.bootstrap import ALIAS, GUARD
    from .attach.bundle import collect

    path = socket_path()
    bundle = collect(os.path.dirname(os.path.abspath(__file__)))  # read now: the install may change later
    _armed.append(path)
    # a real OS thread, and real sleeps and locks in it, whatever the application patched before it armed:
    # gevent's threading.Thread is a greenlet, whose accept() stopped every greenlet of the application
    # (it never printed its first line), and gevent's sleep made a hub in our thread (services/realthreads)
    import threading  # noqa: F401 - unpatched, realthreads starts a threading.Thread: py-spy and stack show its name

    from .services import realthreads

    _real.append(realthreads)
    realthreads.Thread(_serve_forever, "flight_profiler-agent", (bundle, ALIAS, GUARD, path)).start()
    return path


_real: "List[Any]" = []  # services.realthreads, imported when arming (kept here: -m forgets our modules)


def _serve_forever(bundle: "Dict[str, Tuple[str, str, bool]]", alias: "str", guard: "str", path: "str") -> None:
    """Load the agent, serve until a detach, arm again; never lets an exception reach the application."""
    sleep = _real[0].sleep

    failures = 0
    while failures < 3 and not sys.is_finalizing():
        try:
            loaded = _load_guarded(dict(bundle), alias, guard)  # a copy: unload empties the one it was given
            if loaded is None:
                sleep(0.5)  # an injected agent runs here (a client came while we re-armed): its turn
                continue
            package, unload = loaded
            package._fp_load(alias + ".agent.server").serve(path, "<flight_profiler armed %s>" % path)
            _after_detach(package, alias, guard, unload)
            failures = 0
        except BaseException:  # noqa: BLE001 - reported in the agent's log, never to the application
            failures += 1
            _log(path)
        sleep(0.05)


def _load_guarded(bundle: "Dict[str, Tuple[str, str, bool]]", alias: "str", guard: "str") -> "Optional[Any]":
    """(package, unload) loaded like an injected agent, under the bootstrap's loader lock; None if loaded already."""
    lock = _guard(guard)
    try:
        if alias in sys.modules:
            return None
        filename, source, _ = bundle[alias + ".agent.loader"]
        installed: Dict[str, Any] = {"__name__": alias + "._bootstrap_loader"}  # its types count as ours (mem)
        exec(compile(source, filename, "exec"), installed)  # noqa: S102 - our own code
        return installed["install"](bundle, alias), installed["unload"]
    finally:
        lock.release()


def _after_detach(package: "Any", alias: "str", guard: "str", unload: "Any") -> None:
    """serve() returned: the detach unloads our modules right after; make sure they are gone before reloading."""
    import time

    end = time.monotonic() + 5.0
    while sys.modules.get(alias) is package and time.monotonic() < end:
        _real[0].sleep(0.01)
    if sys.modules.get(alias) is package:  # the listener failed without a detach: unload it ourselves
        lock = _guard(guard)
        try:
            unload(alias)
        finally:
            lock.release()


def _guard(key: "str") -> "Any":
    """The bootstrap's process-wide loader lock (``attach/bootstrap``), taken; the same protocol, the same key."""
    while True:
        guard = sys.modules.get(key)
        if guard is None:
            fresh = type(sys)(key)
            fresh.lock = _real[0].allocate_lock()  # type: ignore[attr-defined]  # as the bootstrap's: an original
            fresh.pid = os.getpid()  # type: ignore[attr-defined]  # a forked child's bootstrap tells a stale one by it
            guard = sys.modules.setdefault(key, fresh)
        guard.lock.acquire()
        if sys.modules.get(key) is guard:
            return guard.lock
        guard.lock.release()


def _log(path: "str") -> None:
    """The failure into the agent's log, only inside a directory that is ours and private, never through a link.

    ``/tmp/flight_profiler-<uid>`` may have been made by another user before the
    application started (the agent then refuses to listen there): writing our log
    there by path would append to whatever file of ours that user's link points at.
    """
    try:
        import posix  # its own open: eventlet patches os.open and os.fdopen
        import stat
        import traceback

        info = os.lstat(os.path.dirname(path))
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
            return
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        with open(posix.open(path + ".log", flags, 0o600), "a") as fh:
            traceback.print_exc(file=fh)
    except BaseException:  # noqa: BLE001, S110 - nowhere else to say it without touching the app's streams
        pass


# ---------------------------------------------------------------------------- python -m flight_profiler.arm


def main(argv: "List[str]") -> None:
    """Arm, then run the application as ``python SCRIPT ARGS`` or ``python -m MODULE ARGS`` would."""
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        sys.stderr.write(USAGE + "\n")
        raise SystemExit(2)
    _arm_or_say_why()
    _forget_our_modules()
    import runpy

    if argv[0] == "-m":
        sys.argv[:] = argv[1:]
        _run(lambda: runpy.run_module(argv[1], run_name="__main__", alter_sys=True))
        return
    script = argv[0]
    if not os.path.exists(script):
        sys.stderr.write("%s: can't open file %r: [Errno 2] No such file or directory\n" % (sys.executable, script))
        raise SystemExit(2)
    sys.argv[:] = argv
    if not os.path.isfile(script):  # a directory or zip file with a __main__.py
        _run(lambda: runpy.run_path(script, run_name="__main__"))
        return
    sys.path[0] = os.path.dirname(os.path.realpath(script))  # what ``python SCRIPT`` puts there
    _run(lambda: _run_script(script))


def _run_script(script: "str") -> None:
    """``python SCRIPT``: its own ``__main__`` module (kept: it is the main module now), __file__ as Python sets it."""
    filename = os.path.abspath(script) if sys.version_info >= (3, 9) else script
    main = type(sys)("__main__")
    main.__file__ = filename
    main.__builtins__ = sys.modules["builtins"]  # type: ignore[attr-defined]
    external = sys.modules.get("_frozen_importlib_external")
    if external is not None:
        main.__loader__ = external.SourceFileLoader("__main__", filename)
    with open(script, "rb") as fh:
        code = compile(fh.read(), filename, "exec", dont_inherit=True)  # bytes: the coding cookie is honoured
    sys.modules["__main__"] = main
    exec(code, main.__dict__)  # noqa: S102 - the application itself


def _arm_or_say_why() -> None:
    """The application runs whether or not arming worked; one line on stderr says why it is not armed."""
    try:
        arm()
    except Exception as exc:  # noqa: BLE001 - e.g. no /proc: the application must start anyway
        sys.stderr.write("flight_profiler.arm: not armed: %s\n" % (exc,))


def _forget_our_modules() -> None:
    """What ``-m`` and arming imported under our public name (this module runs as ``__main__``)."""
    for name in list(sys.modules):
        if name == "flight_profiler" or name.startswith("flight_profiler."):
            sys.modules.pop(name, None)


def _run(application: "Any") -> None:
    """Run it; an uncaught exception is reported as the interpreter would, without our frames."""
    try:
        application()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        raise  # the interpreter then exits by SIGINT, as the application would
    except BaseException as exc:  # noqa: BLE001 - the interpreter's own top-level handling, minus our frames
        trimmed = _application_frames(exc.__traceback__)
        sys.excepthook(type(exc), exc.with_traceback(trimmed), trimmed)  # 3.12+ print the exception's own
        raise SystemExit(1) from None


def _application_frames(tb: "Optional[Any]") -> "Optional[Any]":
    ours = (os.path.abspath(__file__), "runpy")
    while tb is not None and tb.tb_next is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not (filename == ours[0] or ours[1] in os.path.basename(filename)):
            break
        tb = tb.tb_next
    return tb


if __name__ == "__main__":
    main(sys.argv[1:])
elif os.environ.get(ENV) == "1":
    _arm_or_say_why()  # ``import flight_profiler.arm`` in the application, switched on by the environment
