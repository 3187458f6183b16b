"""Target for the diagnostic commands (thread, monitor, logger): known threads, locks and calls.

Threads: two deadlocked on RLocks taken in opposite order, a CPU hog, idle sleepers,
an asyncio loop with two tasks deadlocked on asyncio.Locks, and a caller making a known
number of calls to ``Service.work`` with known sleeps. Prints "ready" once all are in place.
"""

import asyncio
import logging
import signal
import sys
import threading
import time

LOCK_A = threading.RLock()
LOCK_B = threading.RLock()
ALOCK_A = None
ALOCK_B = None
both_locked = threading.Barrier(3)
tasks_locked = threading.Event()
log = logging.getLogger("diag.app")
logging.getLogger("diag.app.db").setLevel(logging.WARNING)
log.addHandler(logging.NullHandler())
CALLS = {"go": threading.Event(), "count": 0, "sleep_s": 0.02, "fail_every": 4}


def first():
    with LOCK_A:
        both_locked.wait()
        with LOCK_B:
            pass


def second():
    with LOCK_B:
        both_locked.wait()
        with LOCK_A:
            pass


def hog():
    total = 0
    while True:
        total = (total * 31 + 7) & 0xFFFF


def sleeper():
    while True:
        time.sleep(0.5)


class Service:
    def work(self, n):
        time.sleep(CALLS["sleep_s"])
        if n % CALLS["fail_every"] == 0:
            raise ValueError("bad %d" % n)
        return n


def caller():
    """Makes ``CALLS['count']`` calls each time ``CALLS['go']`` is set (set through console)."""
    service = Service()
    while True:
        CALLS["go"].wait()
        CALLS["go"].clear()
        for n in range(1, CALLS["count"] + 1):
            try:
                service.work(n)
            except ValueError:
                pass
        accumulate(4)


def accumulate(count):
    total = 0
    # NO_CODE: a comment line inside the function
    for step in range(count):
        total += step  # LINE_TOTAL
    return total


async def task_one():
    async with ALOCK_A:
        await asyncio.sleep(0.05)
        async with ALOCK_B:
            pass


async def task_two():
    async with ALOCK_B:
        await asyncio.sleep(0.05)
        async with ALOCK_A:
            pass


async def hold_it(lock):
    async with lock:
        await asyncio.sleep(3600)


async def wait_on(lock):
    async with lock:
        pass


async def lock_owner():
    """Makes a lock and hands it to a holder and a waiter: a variable of its own, never held by it."""
    lock = asyncio.Lock()
    holder = asyncio.create_task(hold_it(lock), name="lock-holder")
    await asyncio.sleep(0.05)
    waiter = asyncio.create_task(wait_on(lock), name="lock-waiter")
    await asyncio.gather(holder, waiter)


async def loop_main():
    global ALOCK_A, ALOCK_B
    ALOCK_A, ALOCK_B = asyncio.Lock(), asyncio.Lock()
    one = asyncio.ensure_future(task_one())
    two = asyncio.ensure_future(task_two())
    owner = asyncio.create_task(lock_owner(), name="lock-owner")
    await asyncio.sleep(0.3)
    tasks_locked.set()
    await asyncio.gather(one, two, owner)


def run_loop():
    asyncio.run(loop_main())


def main():
    signal.signal(signal.SIGUSR1, lambda *a: sys.exit(0))
    threading.Thread(target=first, name="dl-first", daemon=True).start()
    threading.Thread(target=second, name="dl-second", daemon=True).start()
    threading.Thread(target=hog, name="cpu-hog", daemon=True).start()
    for index in range(2):
        threading.Thread(target=sleeper, name="idle-%d" % index, daemon=True).start()
    threading.Thread(target=caller, name="caller", daemon=True).start()
    threading.Thread(target=run_loop, name="loop", daemon=True).start()
    both_locked.wait()
    tasks_locked.wait()
    time.sleep(0.1)
    print("ready", flush=True)
    while True:
        time.sleep(0.2)


if __name__ == "__main__":
    main()
