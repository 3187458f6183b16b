"""Workload for bench/overhead.py: a hot one-line function, or a method with 200 sub-calls.

Reads the workload name from stdin ("hot" or "method"; bench/trace_cost.py: "method50", the
method with 50 sub-calls, and "cprofile50", the same under cProfile); prints
"tick <monotonic> <calls so far> <rss kB> <process CPU seconds>" every 0.2 s. Stdlib only.
"""

import sys
import threading
import time

MODE = ["hot"]
COUNT = [0]


def hot(x):
    return x + 1


def leaf(i):
    return i * 2


class Work:
    def handle(self, n):
        total = 0
        for i in range(n):
            total += leaf(i)
        return total


WORK = Work()


def worker():
    while True:
        if MODE[0] == "hot":
            for i in range(20000):
                hot(i)
            COUNT[0] += 20000
        elif MODE[0] == "method50":
            for _ in range(80):
                WORK.handle(50)
            COUNT[0] += 80
        elif MODE[0] == "cprofile50":
            cprofile50()
        else:
            for _ in range(20):
                WORK.handle(200)
            COUNT[0] += 20


def cprofile50():
    """The floor a C profiler sets: the 50-sub-call method with cProfile on, as long as the mode lasts."""
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        while MODE[0] == "cprofile50":
            for _ in range(80):
                WORK.handle(50)
            COUNT[0] += 80  # the same few functions: its table stays small
    finally:
        profiler.disable()


def rss_kb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4


def reporter():
    while True:
        time.sleep(0.2)
        print("tick %.4f %d %d %.4f" % (time.monotonic(), COUNT[0], rss_kb(), time.process_time()), flush=True)


def control():
    for line in sys.stdin:
        MODE[0] = line.strip() or MODE[0]


def main():
    threading.Thread(target=reporter, daemon=True).start()
    threading.Thread(target=control, daemon=True).start()
    print("ready", flush=True)
    worker()


if __name__ == "__main__":
    main()
