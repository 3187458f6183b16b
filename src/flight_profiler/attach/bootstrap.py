"""The only code-in-a-string: what the injector runs in the target's thread.

It must be tiny, exception-proof and quick: it runs at a safe point of a thread
we interrupted (possibly the main thread, where a signal arriving meanwhile
would be swallowed). It only starts the agent thread and returns. It binds no
name in ``__main__`` (it runs inside ``exec`` with a namespace of its own) and
never lets an exception out (a pending call returning -1 kills the target).
The agent thread then loads our modules from the bundle file under a private
alias (see ``agent/loader``), so it neither needs nor shadows anything on the
target's ``sys.path``.

Before it starts anything it takes two decisions the client can read back:
- it reserves ``RESERVED_FDS`` descriptors (pipes: no path needed); when the
  target has none free it renames the claim ticket to ``<ticket>.nofd`` (a
  rename needs no descriptor) and starts nothing;
- it claims the ticket (``attach/ticket``) by renaming it to ``<ticket>.claimed``,
  and the agent thread, once it has loaded our modules and right before it
  creates its socket, claims that by unlinking it (a thread that loses unloads
  what it loaded and exits). The
  client withdraws whichever of the two exists by unlinking it when it gives up,
  so exactly one side wins each step: an agent never starts after the user was
  told it could not (the thread that loses exits at once, having done nothing),
  and a bootstrap run twice (a queued pending call that fires late) finds no
  ticket and does nothing.
Once the ticket is its own (and only then) it shortens the target's switch interval for the
agent's start (``SWITCH_BOOST``, below), which the target itself restores.
The ticket's name is new for every attempt and baked into that attempt's code: a
bootstrap of a client killed after it queued a pending call can only ever find
its own ticket, which the next attempt withdraws before it issues its own; it
can never take the next attempt's.

One loader per process: the agent threads of any number of bootstraps (a late
pending call, a fallback in a parked thread, remote_exec) load or reuse our
modules one at a time, under a lock kept in ``sys.modules`` under our private
alias (``_flight_profiler._guard``: a module object, so whatever walks
``sys.modules`` sees a module; removed with our modules at detach). A thread
that gets it after another loaded the agent reuses the loaded modules; its
``serve`` returns at once when an agent already listens.
The agent thread is a real OS thread even in a gevent/eventlet-patched target
(the original ``start_new_thread``, and the original lock type for the guard),
named through ``threading`` where that is loaded and not patched.
"""

from __future__ import annotations

import os

ALIAS = "_flight_profiler"
GUARD = ALIAS + "._guard"  # sys.modules key of the one-loader-per-process lock (see above; arm.py takes it too)
# fds the bootstrap must get before it starts a thread: the bundle read, the listener, one
# session, and one kept until the agent thread exits (3.8 aborts if a thread exits without one)
RESERVED_FDS = 4
# The switch interval while our agent starts (seconds; the app's default is 0.005), and for how long
# at most. Every time the agent's start lets go of the GIL (a system call, a thread start, a forced
# switch) it queues again behind the target's busy threads, ~N switch intervals for N of them: a
# shorter interval shortens every such wait. Its cost: each waiting thread wakes once per interval
# (N/interval wake-ups a second) and the busy threads switch 5x as often, so they do less work
# meanwhile (bench/RESULTS-attach-threads.md). Hence short-lived and undone by the target itself:
# the agent's listener restores it at the first answer or at the deadline (its waits until then
# are bounded by it), and the agent thread on any other exit; only while the value is still ours
# (an interval the app set meanwhile stays). 990 us rather than a round 1 ms: an app's own
# choice is unlikely to be mistaken for ours.
SWITCH_BOOST = 0.00099
SWITCH_BOOST_FOR = 1.0
# ... and only where the target has at most this many other threads: every thread waiting for the
# GIL wakes once per interval, so the wake-ups grow with threads / interval and, on a host without
# a free core, take the CPU the waits were to gain (measured on 3.12, first attach, medians: 50
# threads of which 25 busy 2.9 s -> 2.0 s; 200 of which 100 busy no gain, 6.9 -> 7.5 s and
# 4.9 -> 12.5 s; bench/RESULTS-attach-threads.md)
SWITCH_BOOST_MAX_THREADS = 64
# How long the bootstrap in a forked child waits for the undoing of what its parent's agent left
# (agent/server.forsake_inherited) before it loads a fresh agent anyway (see _fp_forsake)
FORSAKE_WAIT = 3.0

_BODY = """
import sys, os, posix, _thread
def _fp_close(fds):
    for fd in fds:
        try:
            os.close(fd)
        except BaseException:
            pass
def _fp_original(name):
    value = getattr(_thread, name)
    if type(value) is type(len):
        return value  # not monkeypatched
    try:
        return sys.modules["gevent.monkey"].get_original("_thread", name)
    except BaseException:
        pass
    try:
        return getattr(sys.modules["eventlet.patcher"].original("_thread"), name)
    except BaseException:
        return value
def _fp_new_guard(key):
    fresh = type(sys)(key)
    fresh.lock = _fp_original("allocate_lock")()
    fresh.pid = os.getpid()
    return fresh
def _fp_guard(key):
    while True:
        guard = sys.modules.get(key)
        if guard is None:
            guard = sys.modules.setdefault(key, _fp_new_guard(key))  # atomic: every thread gets the same one
        if getattr(guard, "pid", os.getpid()) != os.getpid():
            # made in the process we were forked from, maybe held there at the fork by a thread that is not
            # here: this process gets a guard of its own (a guard with no pid is an older agent's: waited for)
            if sys.modules.get(key) is guard:
                sys.modules[key] = _fp_new_guard(key)
            continue
        guard.lock.acquire()
        if sys.modules.get(key) is guard:
            return guard
        guard.lock.release()  # unloaded while we waited (a detach, a loader that lost): take the next one
def _fp_forsake(alias):
    # our modules came with a fork from the process that loaded them (a prefork master attached
    # earlier), without their threads: undo what they left here and drop them (the guard stays: we hold it).
    # On a thread of its own, waited for %(forsake_wait)r s at most: a lock it needs may have been held at
    # the fork by a thread that is not here; then that thread stays blocked, and the attach goes on.
    done = _fp_original("allocate_lock")()
    done.acquire()
    def undo():
        try:
            sys.modules[alias]._fp_load(alias + ".agent.server").forsake_inherited()
        except BaseException:
            pass
        finally:
            done.release()
    try:
        _fp_original("start_new_thread")(undo, ())
        done.acquire(True, %(forsake_wait)r)
    except BaseException:
        pass
    for name in [n for n in list(sys.modules) if n == alias or n.startswith(alias + ".")]:
        if name != %(guard)r:
            sys.modules.pop(name, None)
def _fp_load(alias, claimed):
    installed = None
    if getattr(sys.modules.get(alias), "_fp_owner", os.getpid()) != os.getpid():
        _fp_forsake(alias)
    if alias not in sys.modules:  # under the guard: absent, or loaded completely by an earlier bootstrap
        try:
            fd = posix.open(%(bundle)r, os.O_RDONLY)  # posix: eventlet patches os.open and os.read
        except OSError:
            if not os.path.exists(claimed):
                return None, None  # withdrawn meanwhile, and the bundle with it
            raise
        try:  # open, one read, close: every system call lets go of the GIL (no io layer: it adds four)
            data, got = [], 0
            while got != %(size)d:  # the size the client wrote: no read of the end of the file
                chunk = posix.read(fd, %(size)d + 1 - got if got <= %(size)d else 1 << 20)
                if not chunk:
                    break
                data.append(chunk)
                got += len(chunk)
        finally:
            os.close(fd)
        # a split, not a compile: the client's magic number, then name, file, is-package, source, code, ...
        parts = b"".join(data).decode("utf-8").split("\\0")
        magic, parts = parts[0], parts[1:]
        bundle = {parts[i]: (parts[i + 1], parts[i + 3], parts[i + 2] == "1") for i in range(0, len(parts) - 4, 5)}
        names = [name for name in [alias + ".agent.loader"] + [alias + m for m in %(start)r] if name in bundle]
        # the loader and what every first answer runs, made in one C call (dict, zip, map, and compile or
        # marshal.loads): the GIL is only given up at a bytecode boundary, so this costs one wait for it,
        # not one per 5 ms. Unmarshalled (~1 ms) where the client compiled them for this very bytecode
        # (its magic number is ours, no -O here: see attach/bundle.py), compiled (20-30 ms) otherwise.
        coded = {parts[i]: parts[i + 4] for i in range(0, len(parts) - 4, 5) if parts[i + 4]}
        ext, marshal = sys.modules.get("_frozen_importlib_external"), sys.modules.get("marshal")
        if (magic and ext is not None and marshal is not None and magic == ext.MAGIC_NUMBER.hex()
                and not sys.flags.optimize and all(n in coded for n in names)):
            # (with the start set, the modules most first commands load: the loader runs them when imported)
            compiled = dict(zip(coded, map(marshal.loads, map(bytes.fromhex, coded.values()))))
        else:
            sources, files = [bundle[n][1] for n in names], [bundle[n][0] for n in names]
            compiled = dict(zip(names, map(compile, sources, files, ["exec"] * len(names))))
        installed = {"__name__": alias + "._bootstrap_loader"}  # its types count as ours (mem)
        exec(compiled.pop(alias + ".agent.loader"), installed)
        installed["install"](bundle, alias, "", compiled)
    try:
        server = sys.modules[alias]._fp_load(alias + ".agent.server")
        os.unlink(claimed)  # the claim, right before the socket exists: from now on the client waits for us
    except BaseException:
        if installed is not None:  # nobody else saw them: every other bootstrap waits for the guard
            installed["unload"](alias)
        if not os.path.exists(claimed):
            return None, None  # the client withdrew while we loaded: no agent, no trace
        raise
    return server, installed
def _fp_boost():
    # a shorter switch interval while our agent starts: each of its waits for the GIL behind N busy
    # threads is ~N intervals (see SWITCH_BOOST); (ours as read back, theirs, until when) or None
    try:
        import time
        theirs = sys.getswitchinterval()
        if theirs <= %(boost)r:
            return None  # the app runs as short already (or another bootstrap of ours set it): not ours to undo
        if _thread._count() > %(boost_threads)d:
            return None  # so many threads that their wake-ups would cost more than the shorter waits gain
        sys.setswitchinterval(%(boost)r)
        return (sys.getswitchinterval(), theirs, time.monotonic() + %(boost_for)r)
    except BaseException:
        return None
def _fp_unboost(boost):
    try:  # compare-and-restore: a value the app set meanwhile is the app's, and stays
        if boost is not None and sys.getswitchinterval() == boost[0]:
            sys.setswitchinterval(boost[1])
    except BaseException:
        pass
def _fp_log(exc):
    # why no agent came, for the client (it shows the last line); written by hand: traceback would
    # import re, linecache, ... into the target, to stay
    lines = tb = code = None
    try:
        lines, tb = ["Traceback (most recent call last):\\n"], exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            lines.append('  File "%%s", line %%d, in %%s\\n' %% (code.co_filename, tb.tb_lineno, code.co_name))
            tb = tb.tb_next
        lines.append("%%s: %%s\\n" %% (type(exc).__name__, exc))
        with open(%(log)r, "a") as fh:
            fh.write("".join(lines))
    except BaseException:
        pass
    finally:
        lines = tb = code = exc = None  # the frames: freed now, not by the next collection
def _fp_agent(reserve, boost):
    claimed, server = %(ticket)r + ".claimed", None
    try:
        free = sorted(reserve[1:])  # for the agent's own files; reserve[0] is kept for the thread's exit
        if free[-1] - free[0] == len(free) - 1:
            os.closerange(free[0], free[-1] + 1)  # the usual case: one let-go of the GIL, not one per fd
        else:
            _fp_close(free)
        import time
        if time.time() > %(deadline)r or not os.path.exists(claimed):
            return  # the client gave up on us and told the user so: leave the target as it was
        guard = _fp_guard(%(guard)r)  # one loader per process, whatever ran this bootstrap
        try:
            server, installed = _fp_load(%(alias)r, claimed)
        finally:
            guard.lock.release()
        if server is not None:
            try:
                server.serve(%(sock)r, %(key)r, boost)  # at once where another bootstrap's agent already serves
            except BaseException:
                if installed is not None and not server.running():  # never served (a sandbox's EPERM on
                    guard = _fp_guard(%(guard)r)  # socket()): the modules we loaded go, as a detach's do
                    try:
                        installed["unload"](%(alias)r)
                    finally:
                        guard.lock.release()
                raise
    except BaseException as exc:
        if server is not None or os.path.exists(claimed):  # after a withdrawal nothing of ours may appear
            _fp_log(exc)
    finally:
        _fp_unboost(boost)  # the listener restored it at its first answer or deadline; any other exit: here
        _fp_close(reserve[:1])  # 3.8 aborts when a thread exits with no free fd: free one first
        try:  # these functions and their globals are a cycle: freed now, not at the next full collection
            globals().clear()  # _fp_start is done with them: it returned once this thread had started
        except BaseException:
            pass
def _fp_start():
    reserve = []
    try:
        while len(reserve) < %(fds)d:
            reserve.extend(os.pipe())  # no path needed: works in any mount namespace
    except BaseException:
        _fp_close(reserve)
        try:
            os.rename(%(ticket)r, %(ticket)r + ".nofd")  # a rename needs no fd: the client reads it
        except BaseException:
            pass
        return
    try:
        os.rename(%(ticket)r, %(ticket)r + ".claimed")  # first claim; the client withdraws by unlinking
    except BaseException:
        _fp_close(reserve)
        return  # the client gave up, or another run of this bootstrap claimed it
    boost = _fp_boost()  # only once the ticket is ours: a bootstrap that starts nothing changes nothing
    start = _fp_original("start_new_thread")
    threading = sys.modules.get("threading")
    if type(_thread.start_new_thread) is not type(len):  # patched (gevent, eventlet): greenlets would never run us
        threading = None
    try:
        if threading is not None:  # named, so py-spy and stack show it
            threading.Thread(target=_fp_agent, args=(reserve, boost), name="flight_profiler-agent", daemon=True).start()
        else:
            start(_fp_agent, (reserve, boost))
    except BaseException as exc:  # no thread (RLIMIT_AS, RLIMIT_NPROC, a cgroup's pids.max): say why
        _fp_unboost(boost)
        _fp_close(reserve)
        _fp_log(exc)
try:
    _fp_start()
except BaseException:
    pass
"""


def package_dir() -> str:
    """Our installed package, from which the bundle is made."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bundle_path(socket_path: str) -> str:
    return socket_path[: -len(".sock")] + ".bundle"


def ticket_path(socket_path: str, ticket: str) -> str:
    """The attempt's claim ticket ``ticket`` (a file name, see ``attach/ticket``) next to the socket."""
    return os.path.join(os.path.dirname(socket_path), ticket)


def source(socket_path: str, deadline: float, ticket: str, bundle_bytes: int = -1) -> str:
    """One expression statement: runs the body in a throwaway namespace, binds nothing in ``__main__``.

    ``deadline`` (``time.time()``) is when the client stops waiting: an agent thread
    that only gets to run after it (a pending call that fired late, a GIL that was
    held) does nothing. ``ticket``: this attempt's claim ticket (``ticket.new_name``).
    ``bundle_bytes``: the bundle file's size, so that one read gets it all (-1: read to its end).
    """
    from ..agent.loader import START_MODULES  # what every first answer runs: compiled with the loader

    text = _BODY % {
        "deadline": deadline,
        "alias": ALIAS,
        "guard": GUARD,
        "bundle": bundle_path(socket_path),
        "key": "<flight_profiler bundle %s>" % socket_path,
        "sock": socket_path,
        "log": socket_path + ".log",
        "ticket": ticket_path(socket_path, ticket),
        "fds": RESERVED_FDS,
        "start": START_MODULES,
        "size": bundle_bytes,
        "boost": SWITCH_BOOST,
        "boost_for": SWITCH_BOOST_FOR,
        "boost_threads": SWITCH_BOOST_MAX_THREADS,
        "forsake_wait": FORSAKE_WAIT,
    }
    return "exec(%r, {'__name__': '_flight_profiler_boot'})" % text
