"""Instances reachable only from a running function's local variable (tests/integration/test_heapwalk.py).

A worker thread builds N ``Held`` objects in a list it keeps in a local
variable and sleeps; nothing else refers to them. A full collection before
"ready" moves them out of the young generations, so a heap walk finds them only
through the worker's frame.
"""

import gc
import os
import sys
import threading
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000


class Held:
    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index


def worker(built):
    held = [Held(i) for i in range(N)]
    built.set()
    while True:
        time.sleep(1)
        if not held:  # never: keeps the name alive and used
            break


built = threading.Event()
threading.Thread(target=worker, args=(built,), name="holder", daemon=True).start()
built.wait()
gc.collect()
gc.collect()
print("ready %d" % os.getpid(), flush=True)
while True:
    time.sleep(0.05)
