"""A target for ``perf``: the main thread burns CPU in burn_cpu_hotspot(); SIGUSR1 ends it (exit 0)."""

import os
import signal
import sys

STOP = []


def burn_cpu_hotspot():
    total = 0
    for i in range(20000):
        total += i * i % 7
    return total


def main():
    signal.signal(signal.SIGUSR1, lambda signum, frame: STOP.append(signum))
    print("ready %d" % os.getpid(), flush=True)
    while not STOP:
        burn_cpu_hotspot()


if __name__ == "__main__":
    main()
    sys.exit(0)
