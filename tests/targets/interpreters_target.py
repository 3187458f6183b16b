"""A program that runs other interpreters beside its main one, through the interpreters module
(``_interpreters``, 3.13+; ``_xxsubinterpreters`` before), as 3.14's ``concurrent.interpreters``
does. The main interpreter calls work() until SIGUSR1 (then exits 0); the others only exist.
Prints "ready" once they do. Stdlib only; Python 3.8+.

Usage: interpreters_target.py [OTHERS]   (default 1; 0: the module loaded, no other interpreter)
"""

import signal
import sys
import threading
import time

try:
    import _interpreters as interpreters
except ImportError:
    import _xxsubinterpreters as interpreters

STOP = threading.Event()


def work(n):
    return sum(range(n))


def main():
    signal.signal(signal.SIGUSR1, lambda signum, frame: STOP.set())
    others = [interpreters.create() for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1)]
    for other in others:
        interpreters.run_string(other, "answer = 42\n")  # its own __main__
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while not STOP.is_set():
        work(100)
        time.sleep(0.005)
    for other in others:
        interpreters.destroy(other)


main()
