"""A prefork-style target: the main thread calls ``work`` in a loop, and forks when asked.

SIGUSR2 asks for a fork (done by the main loop, not in the handler); the parent prints
"forked <pid>" and both go on with the same loop. SIGUSR1 exits 0 (support's healthy check).
With the argument ``held-guard`` the fork happens while the agent's loader guard is held, as it is
while a bootstrap loads our modules (taken here, the instant being too short to hit by chance):
the child inherits it held, by a thread it does not have. With ``held-tt`` the same happens to the
lock of tt's record store, which undoing the parent's agent in the child takes (tt must have run).
Stdlib only; 3.8+.
"""

import logging
import os
import signal
import sys
import time
import warnings

warnings.simplefilter("ignore")  # 3.12+: "use of fork() may lead to deadlocks" (our agent's threads)
COUNT = 0
LOG = logging.getLogger("forktest")  # logger's target (level NOTSET)
WANTED = []


def work(i):
    global COUNT
    COUNT += 1
    return i * 2


def _ask(signum, frame):
    WANTED.append(1)


signal.signal(signal.SIGUSR1, lambda signum, frame: sys.exit(0))
signal.signal(signal.SIGUSR2, _ask)
print("ready", flush=True)
i = 0
while True:
    work(i)
    i += 1
    if WANTED:
        del WANTED[:]
        guard = sys.modules.get("_flight_profiler._guard") if "held-guard" in sys.argv else None
        if "held-tt" in sys.argv:  # tt's record store, held as while a thread of ours records a call
            guard = sys.modules["_flight_profiler.commands.tt.agent"].STORE.lock
        if guard is not None:
            guard = getattr(guard, "lock", guard)
            guard.acquire()
        child = os.fork()
        if child and guard is not None:
            guard.release()
        if child:
            print("forked %d" % child, flush=True)
    time.sleep(0.01)
