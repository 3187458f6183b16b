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


def _floor_code(kind):
    """``hot`` replaced by the cheapest hooks possible, for the bench's floors: a wrapper that only
    calls a copy of the original (a constant of its code, as our hooks do), and the same wrapper with
    the never-matching filter ``args[0] < 0`` compiled in, unguarded."""
    shadow = type(hot)(ORIGINAL.replace(), globals(), "hot")
    call = "('S' if 1 else 0)(x)"  # a constant callee; written so that the compiler does not warn
    body = {
        "plain": "    return %s\n" % call,
        "inline": "    if x < 0:\n        return %s\n    return %s\n" % (call, call),
    }[kind]
    code = compile("def hot(x):\n" + body, "<floor>", "exec").co_consts[0]
    return code.replace(co_consts=tuple(shadow if c == "S" else c for c in code.co_consts))


ORIGINAL = hot.__code__


def control():
    for line in sys.stdin:
        word = line.strip()
        if word.startswith("floor-"):  # floor-plain, floor-inline, floor-off
            kind = word[len("floor-") :]
            hot.__code__ = ORIGINAL if kind == "off" else _floor_code(kind)
            continue
        MODE[0] = word or MODE[0]


def main():
    threading.Thread(target=reporter, daemon=True).start()
    threading.Thread(target=control, daemon=True).start()
    print("ready", flush=True)
    worker()


if __name__ == "__main__":
    main()
