"""A trio program (tests/integration/test_trio.py): a nursery of five sleepers, a holder of a trio.Lock
it was handed and a waiter on it. trio keeps its tasks in no registry another thread can read; ``stack -a``
finds them through the ``trio.run`` frame of the thread. Prints "ready <pid>" once they all run.
"""

import os

import trio


async def sleeper():
    while True:
        await trio.sleep(0.05)


async def hold_it(lock):
    async with lock:
        await trio.sleep(3600)


async def wait_on(lock):
    async with lock:
        pass


async def main():
    lock = trio.Lock()
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(sleeper)
        nursery.start_soon(hold_it, lock)
        await trio.sleep(0.05)
        nursery.start_soon(wait_on, lock)
        await trio.sleep(0.1)
        print("ready %d" % os.getpid(), flush=True)


trio.run(main)
