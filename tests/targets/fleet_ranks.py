"""A torchrun-like launcher: N ranks started with multiprocessing (spawn), RANK/LOCAL_RANK set in each.

    python fleet_ranks.py [--ranks N] [--odd RANK]

Every rank waits in ``wait_for_work``; the rank given with --odd waits in ``slow_collective``
instead and holds 20,000 ``Hoard`` objects, so merged stacks and memory have one outlier. Prints "ready 0 <pid,...>" once every rank is up;
ranks exit when the launcher goes away.
"""

import multiprocessing
import os
import sys
import time


def tick():
    return 1


def wait_for_work(parent):
    while os.getppid() == parent:
        tick()
        time.sleep(0.05)


class Hoard:
    pass


HOARD = []


def slow_collective(parent):
    HOARD.extend(Hoard() for _ in range(20000))  # a module global: reachable however the heap is walked
    while os.getppid() == parent:
        tick()
        time.sleep(0.05)


def rank_main(parent, odd, ready):
    ready.put(os.getpid())
    if int(os.environ["RANK"]) == odd:
        slow_collective(parent)
    else:
        wait_for_work(parent)


def main():
    ranks = int(sys.argv[sys.argv.index("--ranks") + 1]) if "--ranks" in sys.argv else 4
    odd = int(sys.argv[sys.argv.index("--odd") + 1]) if "--odd" in sys.argv else -1
    context = multiprocessing.get_context("spawn")
    ready = context.SimpleQueue()
    workers = []
    for rank in range(ranks):
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(ranks))  # spawn copies it
        worker = context.Process(target=rank_main, args=(os.getpid(), odd, ready), daemon=True)
        worker.start()
        workers.append(worker)
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        del os.environ[name]
    pids = sorted(ready.get() for _ in workers)
    print("ready 0 %s" % ",".join(str(pid) for pid in pids), flush=True)
    while True:
        time.sleep(0.1)


if __name__ == "__main__":
    main()
