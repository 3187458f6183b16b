"""Workload for bench/diagnostics.py: a hot function, and a rarely called one that ``line`` watches.

The worker calls ``other`` 20 000 times, then ``probed`` once, in a loop; it prints
"tick <monotonic> <other calls so far> <process CPU seconds>" every 0.2 s. Two idle threads
and one sleeping thread give ``thread`` and ``stack`` something to list. Stdlib only.
"""

import sys
import threading
import time

COUNT = [0]


def other(x):
    return x + 1


def probed(n):
    total = 0
    for i in range(3):
        total += i * n  # PROBED_LINE: the line the benchmark asks for
    return total


def worker():
    n = 0
    while True:
        for i in range(20000):
            other(i)
        COUNT[0] += 20000
        n += 1
        probed(n)


def reporter():
    while True:
        time.sleep(0.2)
        print("tick %.4f %d %.4f" % (time.monotonic(), COUNT[0], time.process_time()), flush=True)


def main():
    for _ in range(2):
        threading.Thread(target=threading.Event().wait, daemon=True).start()
    threading.Thread(target=reporter, daemon=True).start()
    threading.Thread(target=worker, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin


if __name__ == "__main__":
    main()
