"""Target process for the ptrace injector tests (runs on Python 3.8-3.14).

Usage: injector_target.py SCENARIO

Prints "ready" (or "ready PORT" for accept) once its main thread is about to enter
the scenario's loop. SIGUSR1 raises Stop in the main thread; main catches it and
exits 0, which proves the main thread and signal handling still work.
"""

import json
import os
import signal
import socket
import sys
import threading
import time


class Stop(Exception):
    pass


def on_usr1(signum, frame):
    raise Stop()


def busy_forever():
    counter = 0
    while True:
        counter += 1


def alloc_forever():
    # Keeps pymalloc and glibc malloc busy (dicts, lists, big and small buffers).
    while True:
        data = {str(i): [i, str(i) * 3, {"k": i}] for i in range(200)}
        json.dumps(data)
        bytearray(200000)
        [bytes(600) for _ in range(20)]


def start_thread(target, name, *args):
    thread = threading.Thread(target=target, name=name, args=args)
    thread.daemon = True
    thread.start()


def start_workers(scenario):
    if scenario in ("threads", "threadsbusy"):
        idle = threading.Event()
        for i in range(25):
            start_thread(idle.wait, "idle-%d" % i)
        for i in range(25):
            start_thread(busy_forever, "busy-%d" % i)
    elif scenario == "alloc":
        for i in range(3):
            start_thread(alloc_forever, "alloc-%d" % i)


def run(scenario, server):
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
    elif scenario in ("busy", "threadsbusy"):
        busy_forever()
    elif scenario == "alloc":
        alloc_forever()
    else:
        raise SystemExit("unknown scenario %r" % scenario)


def main():
    scenario = sys.argv[1]
    signal.signal(signal.SIGUSR1, on_usr1)
    start_workers(scenario)
    server = None
    if scenario == "accept":
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        print("ready %d" % server.getsockname()[1], flush=True)
    else:
        print("ready", flush=True)
    try:
        run(scenario, server)
    except Stop:
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
