"""A big heap with one leaked object far from every root, and a thread that measures its own stalls.

N ``Item`` objects with ``__slots__`` and one list each (2N GC-tracked objects) under the
global ``ITEMS``, and one ``Leak`` at ``CACHE['k'][0][0][0][0][0][0]``: eight references from
a root, deeper than every Item, so a breadth-first search meets the whole heap before it.
The ticker thread sleeps 1 ms in a loop and records the longest gap between two wake-ups.
SIGUSR1 starts a window, SIGUSR2 prints "gap <max ms> <ticks>" for it. Used by
bench/reference_analyze.py.
"""

import gc
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


class Leak:
    pass


ITEMS = [Item(i) for i in range(N)]
CACHE = {"k": [[[[[[Leak()]]]]]]}
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
gc.collect()
threading.Thread(target=ticker, name="ticker", daemon=True).start()
print("ready %d" % os.getpid(), flush=True)
while True:
    time.sleep(0.05)
