"""A big heap (about 2 million GC-tracked objects) and a thread that measures its own stalls.

The ticker thread sleeps 1 ms in a loop and records the longest gap between two
wake-ups: any time another thread holds the GIL for long shows up as a gap.
SIGUSR2 prints "gap <max ms> <ticks>" for the window since the last SIGUSR1
(which starts a new window); SIGTERM ends it. Used by bench/mem_pause.py.
"""

import os
import signal
import sys
import threading
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000


class Item:
    __slots__ = ("tags", "value")

    def __init__(self, value):
        self.value = value
        self.tags = [value]


ITEMS = [Item(i) for i in range(N)]  # N items + N lists: 2N tracked objects
WINDOW = {"max_gap": 0.0, "ticks": 0}


def ticker():
    last = time.perf_counter()
    while True:
        time.sleep(0.001)
        now = time.perf_counter()
        WINDOW["max_gap"] = max(WINDOW["max_gap"], now - last)
        WINDOW["ticks"] += 1
        last = now


def reset(signum, frame):
    WINDOW["max_gap"] = 0.0
    WINDOW["ticks"] = 0


def report(signum, frame):
    print("gap %.3f %d" % (WINDOW["max_gap"] * 1000, WINDOW["ticks"]), flush=True)


signal.signal(signal.SIGUSR1, reset)
signal.signal(signal.SIGUSR2, report)
threading.Thread(target=ticker, name="ticker", daemon=True).start()
print("ready %d" % os.getpid(), flush=True)
while True:
    time.sleep(0.05)
