"""A target for ``gilstat``: one thread holds the GIL in ~50 ms pure-Python slices, two wait for it.

The switch interval is raised to 1 s so the interpreter does not cut the 50 ms
slices short (with the default 5 ms, a waiting thread forces a switch). The
waiters wake every 5 ms and need the GIL for a moment each time, so they wait
while a slice runs. SIGUSR1 ends it with exit status 0.
"""

import os
import signal
import sys
import threading
import time

SLICE = 0.05
STOP = threading.Event()
SLICES = {"count": 0, "total": 0.0, "max": 0.0}  # the holder's own measure of its slices (seconds)


def holder():
    while not STOP.is_set():
        started = time.perf_counter()
        while time.perf_counter() - started < SLICE:  # pure Python: holds the GIL throughout
            pass
        took = time.perf_counter() - started
        SLICES["count"] += 1
        SLICES["total"] += took
        SLICES["max"] = max(SLICES["max"], took)
        time.sleep(0.02)  # drops the GIL


def waiter():
    while not STOP.is_set():
        time.sleep(0.005)


def main():
    sys.setswitchinterval(1.0)
    try:  # ahead of other load on the machine, so the OS does not stretch the slices (root only)
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError:
        pass
    signal.signal(signal.SIGUSR1, lambda signum, frame: STOP.set())
    threads = [threading.Thread(target=holder, name="gil-holder")]
    threads += [threading.Thread(target=waiter, name="gil-waiter-%d" % i) for i in range(2)]
    for thread in threads:
        thread.start()
    print("ready %d" % os.getpid(), flush=True)
    while not STOP.is_set():
        STOP.wait(0.2)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
    sys.exit(0)
