"""Target for the CLI tests: known state, and a main thread in a chosen situation.

Usage: service_target.py SCENARIO [THREADS]
  sleep | sleeploop | event | accept | busy | busy2 | threads [N] | threadsbusy [N] | gilheld [N idle threads]
Prints "ready <port>" when ready. SIGUSR1 makes the main thread exit 0, which
proves the main thread and signal handling still work after an attach.
Stdlib only; Python 3.8+.
"""

import asyncio
import ctypes
import signal
import socket
import sys
import threading
import time

CONFIG = {"name": "svc", "limits": [1, 2, 3], "nested": {"deep": {"deeper": {"deepest": 42}}}}
LONG_TEXT = "a" * 5000 + "END"

logger = "not a logger"  # a global named logger must keep its value


class Wake(Exception):
    pass


class Widget:
    registry = {"kind": "widget"}

    def __init__(self, index):
        self.index = index
        self.label = "w%d" % index


class BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr for you")


widgets = [Widget(i) for i in range(7)]
bad = BadRepr()
TASKS = []
cycle = []
cycle.append(cycle)


def on_usr1(signum, frame):
    raise Wake()


def spin(stop, go=None):
    if go is not None:
        go.wait()
    counter = 0
    while not stop.is_set():
        counter += 1


async def ticker(name):
    while True:
        await asyncio.sleep(0.05)


async def chain_leaf():
    await asyncio.sleep(3600)


async def chain_middle():
    await chain_leaf()


async def chain_parent(child):
    await child


LOOP_READY = threading.Event()  # "ready" is printed once the loop's fds exist: tests count fds from then


def run_loop():
    loop = asyncio.new_event_loop()
    LOOP_READY.set()
    TASKS.extend([loop.create_task(ticker("tick-a")), loop.create_task(ticker("tick-b"))])
    child = loop.create_task(chain_middle(), name="chain-child")  # stack -a: a whole await chain, a task awaiting it
    TASKS.extend([child, loop.create_task(chain_parent(child), name="chain-parent")])
    loop.run_forever()


def start_threads(count_idle, count_busy, stop):
    for index in range(count_idle):
        threading.Thread(target=threading.Event().wait, name="idle-%d" % index, daemon=True).start()
    go = threading.Event()  # all spin at once: each start behind N spinning threads would wait N switch intervals
    for index in range(count_busy):
        threading.Thread(target=spin, args=(stop, go), name="busy-%d" % index, daemon=True).start()
    go.set()


def main_body(scenario, server):
    if scenario == "sleep":
        time.sleep(1e6)
    elif scenario == "sleeploop":
        while True:
            time.sleep(0.2)
    elif scenario in ("event", "threads"):
        threading.Event().wait()
    elif scenario == "accept":
        while True:
            conn, _ = server.accept()
            conn.sendall(b"ok")
            conn.close()
    elif scenario in ("busy", "busy2", "threadsbusy"):
        counter = 0
        while True:
            counter += 1
    elif scenario == "gilheld":
        ctypes.PyDLL(None).sleep(1000000)  # a C call that keeps the GIL


def main():
    scenario = sys.argv[1]
    signal.signal(signal.SIGUSR1, on_usr1)
    stop = threading.Event()
    threading.Thread(target=run_loop, name="asyncio-loop", daemon=True).start()
    LOOP_READY.wait(60)
    if scenario in ("threads", "threadsbusy"):
        half = int(sys.argv[2]) // 2 if len(sys.argv) > 2 else 25  # optional: the number of extra threads
        start_threads(half, half, stop)
    if scenario == "busy2":  # two CPU-bound threads: the main one and one worker
        start_threads(0, 1, stop)
    if scenario == "gilheld" and len(sys.argv) > 2:  # optional: that many idle threads beside the GIL's holder
        start_threads(int(sys.argv[2]), 0, stop)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    print("ready %d" % server.getsockname()[1], flush=True)
    try:
        main_body(scenario, server)
    except Wake:
        stop.set()
        print("woke", flush=True)
        sys.exit(0)


if __name__ == "__main__":
    main()
