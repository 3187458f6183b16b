"""A gevent- or eventlet-patched application whose greenlets keep working (tests/integration/test_green.py).

    python green_target.py gevent|eventlet [arm]

It monkeypatches everything first, as such applications do, then (with ``arm``) imports
``flight_profiler.arm`` (FLIGHT_PROFILER_ARM=1 and flight_profiler on PYTHONPATH: the
application armed itself after patching), then runs a few greenlets: tickers that call
``work(i)`` and count ``TICKS``, one that calls ``rare(-2)`` five times a second (calls a watch
shows each of), and one that holds a lock for ever, with another waiting on it. ``Box``
instances are held by a module-level list (a heap walk finds them). Prints
"ready <pid>" once the greenlets run. Python 3.8+, the library from its venv.
"""

import os
import sys

LIBRARY = sys.argv[1]
if LIBRARY == "gevent":
    from gevent import monkey

    monkey.patch_all()
    import gevent
    import gevent.lock

    spawn, sleep, Lock = gevent.spawn, gevent.sleep, gevent.lock.Semaphore
else:
    import warnings

    warnings.simplefilter("ignore")  # eventlet's deprecation notice
    import eventlet
    import eventlet.semaphore

    eventlet.monkey_patch()
    spawn, sleep, Lock = eventlet.spawn, eventlet.sleep, eventlet.semaphore.Semaphore

if "arm" in sys.argv[2:]:
    import flight_profiler.arm  # noqa: F401 - arms on import (FLIGHT_PROFILER_ARM=1)

TICKS = [0]
LOCK = Lock()


class Box:
    def __init__(self, n):
        self.n = n


BOXES = [Box(n) for n in range(50)]


def work(i):
    return i * 2


def rare(i):
    return i * 2


def ticker(i):
    while True:
        work(i)
        TICKS[0] += 1
        sleep(0.005)


def odd_one_out():
    while True:
        rare(-2)
        sleep(0.2)


def holder():
    with LOCK:
        sleep(10**6)


def waiter():
    sleep(0.05)
    with LOCK:
        pass


workers = [spawn(ticker, i) for i in range(3)] + [spawn(odd_one_out), spawn(holder), spawn(waiter)]
sleep(0.1)
print("ready %d" % os.getpid(), flush=True)
while True:
    sleep(1)
