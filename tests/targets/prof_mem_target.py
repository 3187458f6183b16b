"""A target for ``mem``: an asyncio loop that ticks, a known number of Leaf objects.

- LEAVES holds INITIAL instances of Leaf; SIGUSR2 adds GROW more (on the loop).
- The loop ticks every 5 ms and records in STATS how many ticks it made and the
  longest gap between two ticks, so a test can see that it kept running.
- Each tick allocates 2 KiB on the line marked KNOWN_ALLOCATION (mem top finds it).
- SIGUSR1 ends it with exit status 0.
"""

import asyncio
import collections
import os
import signal
import sys
import time

INITIAL = 3000
GROW = 1234


class Leaf:
    def __init__(self, index):
        self.index = index


LEAVES = [Leaf(i) for i in range(INITIAL)]
STATS = {"ticks": 0, "max_gap": 0.0, "grown": 0}
CHURN = collections.deque(maxlen=200)


def grow():
    LEAVES.extend(Leaf(i) for i in range(GROW))
    STATS["grown"] += 1
    print("grown %d" % len(LEAVES), flush=True)


async def ticker():
    last = time.monotonic()
    while True:
        await asyncio.sleep(0.005)
        now = time.monotonic()
        STATS["max_gap"] = max(STATS["max_gap"], now - last)
        STATS["ticks"] += 1
        last = now
        CHURN.append(bytes(2048))  # KNOWN_ALLOCATION


async def main():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR2, grow)
    loop.add_signal_handler(signal.SIGUSR1, stop.set_result, None)
    task = loop.create_task(ticker())
    print("ready %d" % os.getpid(), flush=True)
    await stop
    task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
