"""The application an embedding host runs (tests/targets/embed_host.c), in its main interpreter or
in a sub-interpreter. Prints "ready"; calls work() until SIGUSR1 (then exits 0), which only the main
interpreter can be sent: in a sub-interpreter it runs until killed. Stdlib only; Python 3.8+.
"""

import sys
import threading
import time

CALLS = [0]


def work(n):
    CALLS[0] += 1
    return sum(range(n))


def main():
    stop = threading.Event()
    try:
        import signal

        signal.signal(signal.SIGUSR1, lambda signum, frame: stop.set())
    except ValueError:  # a sub-interpreter: signal handlers belong to the main interpreter
        pass
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while not stop.is_set():
        work(100)
        time.sleep(0.005)


main()
