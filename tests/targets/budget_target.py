"""Target for the user-code budget tests; stdlib only, Python 3.8+.

Usage: budget_target.py [--idle] [--recursion]
Three threads call ``hot`` in a loop (none with --idle); with --recursion a thread recurses through
``down`` to a few frames below the recursion limit, again and again (a RecursionError is its own
business: counted, as a program that expects it would). The application
installs its own ``threading.excepthook`` and ``sys.excepthook`` (as error
reporters such as Sentry do); both record every call, and ``state()`` (through
``console``) returns what they saw. SIGUSR1 ends the process with 0 when they
saw nothing.
"""

import os
import signal
import sys
import threading
from time import sleep

THREAD_HOOK = []
SYS_HOOK = []
CALLS = [0]
DATA = {"a": 1}
GATE = threading.Event()  # a filter may block on it until the test sets it (no sleep to outlast)
IDLE = "--idle" in sys.argv
TRACED = "--traced" in sys.argv  # every thread under a trace function, as under a debugger or coverage
RECURSION = "--recursion" in sys.argv
DEPTHS = []  # what each recursion returned, or "RecursionError" (the last few)
RECURSIONS = [0]


def hot(x):
    return x + 1


def until_empty(gate):
    """Returns at once for the callers (their list is never empty); a replay with an emptied list spins."""
    while not gate:
        pass
    return len(gate)


# Objects whose own code a capture runs (getglobal, vmtool, tt -i -r, the console's value): it must
# be stopped at its budget and shown as a placeholder, never keep the agent's thread or end its session.
REPRS = [0]  # __repr__ calls of the never-ending kinds below, so a test knows one is running


class Spinning:
    """A __repr__ that never returns, in bytecode (a stop lands at once)."""

    def __repr__(self):
        REPRS[0] += 1
        while True:
            pass


class Sleeping:
    """A __repr__ that never returns, mostly in C (a stop lands between two sleeps)."""

    def __repr__(self):
        REPRS[0] += 1
        while True:
            sleep(0.05)


class Raises:
    def __init__(self, exc):
        self.exc = exc

    def __repr__(self):
        raise self.exc


class EndlessLen(list):
    """A list whose __len__ never returns (a capture reads the length of a list)."""

    def __len__(self):
        while True:
            pass


SPIN_LATER = [False]  # set by a test: then SpinsLater's __repr__ never returns


class SpinsLater:
    def __repr__(self):
        while SPIN_LATER[0]:
            pass
        return "SpinsLater()"


SPINNING = Spinning()
SLEEPING = Sleeping()
MIXED = [Raises(SystemExit(3)), Raises(KeyboardInterrupt()), Spinning(), Sleeping(), 7]
ENDLESS_LEN = EndlessLen([1, 2])
INSTANCES = [Spinning() for _ in range(3)]  # for vmtool -a getInstances


LOOPING = threading.Event()


def looper():
    """An asyncio loop whose __repr__ never returns (stack -a shows each loop's repr), one task on it."""
    import asyncio

    class SpinningLoop(asyncio.SelectorEventLoop):
        def __repr__(self):
            REPRS[0] += 1
            while True:
                pass

    async def napping():
        while True:
            await asyncio.sleep(3600)

    loop = SpinningLoop()
    asyncio.set_event_loop(loop)
    loop.call_soon(LOOPING.set)  # "ready" waits for it: a stack -a right after found no loop running yet
    loop.run_until_complete(napping())


def takes(value):
    return value


def taker():
    later = SpinsLater()
    while True:
        takes(later)
        sleep(0.01)


def gate_caller():
    while True:
        until_empty([1])
        sleep(0.01)


def hot_caller():
    i = 0
    while True:
        i += 1
        hot(i)
        CALLS[0] += 1
        if i % 50 == 0:
            sleep(0.001)


def down(n):
    return 0 if n == 0 else down(n - 1) + 1


def recurser():
    """Recurses to 8 frames below the limit: a hook's work at the bottom needs more than that."""
    while True:
        frame, depth = sys._getframe(), 0
        while frame is not None:
            frame, depth = frame.f_back, depth + 1
        try:
            DEPTHS.append(down(sys.getrecursionlimit() - depth - 8))
        except RecursionError:  # a hooked function costs two frames a call: see the watch skill
            DEPTHS.append("RecursionError")
        del DEPTHS[:-5]
        RECURSIONS[0] += 1
        sleep(0.01)


def thread_hook(args):
    THREAD_HOOK.append("%s in %s" % (args.exc_type.__name__, getattr(args.thread, "name", None)))


def sys_hook(kind, value, tb):
    SYS_HOOK.append(kind.__name__)


def state():
    return {
        "thread_hook": list(THREAD_HOOK),
        "sys_hook": list(SYS_HOOK),
        "calls": CALLS[0],
        "stdin_closed": sys.stdin.closed,
        "threads": sorted(t.name for t in threading.enumerate()),
        "depths": list(DEPTHS),
        "recursions": RECURSIONS[0],
    }


class Stop(Exception):
    pass


def on_usr1(signum, frame):
    raise Stop()


def tracer(frame, event, arg):
    return tracer


def main():
    threading.excepthook = thread_hook
    sys.excepthook = sys_hook
    signal.signal(signal.SIGUSR1, on_usr1)
    if not IDLE:
        threading.Thread(target=gate_caller, name="gate-caller", daemon=True).start()
        threading.Thread(target=taker, name="taker", daemon=True).start()
        for index in range(3):
            threading.Thread(target=hot_caller, name="hot-%d" % index, daemon=True).start()
    if RECURSION:
        threading.Thread(target=recurser, name="recurser", daemon=True).start()
    if not TRACED:
        threading.Thread(target=looper, name="looper", daemon=True).start()
        LOOPING.wait(60)
    if TRACED:
        threading.settrace(tracer)  # reaches every thread started from now on, the agent's included
        sys.settrace(tracer)
    print("ready", flush=True)
    try:
        while True:
            sleep(3600)
    except Stop:
        os._exit(0 if not THREAD_HOOK and not SYS_HOOK else 3)


if __name__ == "__main__":
    main()
