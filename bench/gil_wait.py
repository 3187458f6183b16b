"""The primitive behind the agent's start on a busy target: one wait for the GIL after a blocking call.

In one process with N CPU-bound threads, a thread sleeps 0.1 ms K times and measures how long each
sleep took (the sleep itself plus getting the GIL back behind the busy threads), at the app's switch
interval and at ours (``attach/bootstrap.SWITCH_BOOST``), taking turns; and the busy threads' loops per
second meanwhile (the cost of the shorter interval to the target). Not a test: nothing is asserted.

    .venv/bin/python bench/gil_wait.py [--python 3.12] [--busy 25,100] [--waits 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from stamp import stamp  # noqa: E402

from flight_profiler.attach.bootstrap import SWITCH_BOOST  # noqa: E402
from interpreters import find_interpreters  # noqa: E402

CHILD = r"""
import sys, threading, time
busy, waits, rounds, intervals = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
counts = [0] * busy
def spin(slot):
    count = 0
    while True:
        count += 1
        if not count & 1023:
            counts[slot] = count
for slot in range(busy):
    threading.Thread(target=spin, args=(slot,), daemon=True).start()
time.sleep(0.5)
for _ in range(rounds):
    for interval in intervals:
        sys.setswitchinterval(float(interval))
        took = []
        started, loops = time.perf_counter(), sum(counts)
        for _ in range(waits):
            t = time.perf_counter()
            time.sleep(0.0001)
            took.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - started
        print(interval, sum(took) / len(took), sorted(took)[len(took) // 2], (sum(counts) - loops) / elapsed, flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default="3.12", help="interpreter id")
    parser.add_argument("--busy", default="25,100")
    parser.add_argument("--waits", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    python = dict(find_interpreters())[args.python]
    print(stamp())
    print("| python | busy threads | interval | wait for the GIL, mean ms | median ms | busy loops/s, M | round |")
    print("|---|---|---|---|---|---|---|")
    for busy in (int(n) for n in args.busy.split(",")):
        argv = [python, "-c", CHILD, str(busy), str(args.waits), str(args.rounds), "0.005,%r" % SWITCH_BOOST]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for index, line in enumerate(proc.stdout):
            interval, mean, median, rate = line.split()
            print(
                "| %s | %d | %.2f ms | %.0f | %.0f | %.1f | %d |"
                % (
                    args.python,
                    busy,
                    float(interval) * 1000,
                    float(mean) * 1000,
                    float(median) * 1000,
                    float(rate) / 1e6,
                    index // 2 + 1,
                ),
                flush=True,
            )
        proc.wait()


if __name__ == "__main__":
    main()
