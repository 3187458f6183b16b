"""A producer and a consumer on a queue.Queue: the stdlib's threading.Condition at work, as in most
services. Prints "ready"; SIGUSR1 makes the main thread exit 0, once the consumer has taken more
items after the signal than before it (the queue still moves). Stdlib only; Python 3.8+.
"""

import queue
import signal
import sys
import threading
import time

ITEMS = queue.Queue()
TAKEN = [0]
STOP = threading.Event()


def producer():
    n = 0
    while True:
        n += 1
        ITEMS.put(n)
        time.sleep(0.005)


def consumer():
    while True:
        ITEMS.get()
        TAKEN[0] += 1


def main():
    signal.signal(signal.SIGUSR1, lambda signum, frame: STOP.set())
    for target in (producer, consumer):
        threading.Thread(target=target, name=target.__name__, daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while not STOP.wait(0.1):
        pass
    before = TAKEN[0]
    deadline = time.monotonic() + 10
    while TAKEN[0] <= before + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    sys.exit(0 if TAKEN[0] > before + 3 else 3)


main()
