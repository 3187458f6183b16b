"""Target for the user-code budget tests; stdlib only, Python 3.8+.

Usage: budget_target.py [--idle]
Three threads call ``hot`` in a loop (none with --idle). The application
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


def hot(x):
    return x + 1


def until_empty(gate):
    """Returns at once for the callers (their list is never empty); a replay with an emptied list spins."""
    while not gate:
        pass
    return len(gate)


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
        for index in range(3):
            threading.Thread(target=hot_caller, name="hot-%d" % index, daemon=True).start()
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
