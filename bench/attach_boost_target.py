"""Target of bench/attach_boost.py: N busy threads that count their loops, N idle ones.

    attach_boost_target.py N

SIGUSR2 prints "count <loops of all busy threads> <time.monotonic()>"; prints "ready" when ready.
Stdlib only; Python 3.8+.
"""

import signal
import sys
import threading
import time

COUNTS = []


def spin(slot, go):
    go.wait()
    count = 0
    while True:
        count += 1
        if not count & 1023:
            COUNTS[slot] = count


def report(signum, frame):
    print("count %d %.6f" % (sum(COUNTS), time.monotonic()), flush=True)


def main():
    half = int(sys.argv[1]) // 2
    signal.signal(signal.SIGUSR2, report)
    go = threading.Event()  # all spin at once: a start behind N spinning threads would wait N intervals
    for index in range(half):
        COUNTS.append(0)
        threading.Thread(target=spin, args=(index, go), name="busy-%d" % index, daemon=True).start()
        threading.Thread(target=threading.Event().wait, name="idle-%d" % index, daemon=True).start()
    go.set()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
