"""asyncio on uvloop, whose run loop is compiled: no Python frame of it on the main thread's stack
(tests/integration/test_uvloop.py).

    python uvloop_target.py run|until

``run``: ``uvloop.run(main())`` (an ``asyncio.Runner`` on 3.11+, as ``asyncio.run(...,
loop_factory=...)`` and uvicorn); ``until``: ``loop.run_until_complete(main())`` on a loop
held by a module-level variable. Tasks: five sleepers at one place, a holder of an
asyncio.Lock it was handed and a waiter on it. Prints "ready <pid>" once they all run.
"""

import asyncio
import os
import sys

import uvloop


async def sleeper():
    while True:
        await asyncio.sleep(0.05)


async def hold_it(lock):
    async with lock:
        await asyncio.sleep(3600)


async def wait_on(lock):
    async with lock:
        pass


async def main():
    lock = asyncio.Lock()
    tasks = [asyncio.ensure_future(sleeper()) for _ in range(5)]
    tasks.append(asyncio.ensure_future(hold_it(lock)))
    await asyncio.sleep(0.05)
    tasks.append(asyncio.ensure_future(wait_on(lock)))
    await asyncio.sleep(0.1)
    print("ready %d" % os.getpid(), flush=True)
    await asyncio.gather(*tasks)


if sys.argv[1] == "run":
    uvloop.run(main())
else:
    LOOP = uvloop.new_event_loop()
    asyncio.set_event_loop(LOOP)
    LOOP.run_until_complete(main())
