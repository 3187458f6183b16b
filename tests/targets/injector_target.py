"""Target process for the ptrace injector tests (runs on Python 3.8-3.15).

Usage: injector_target.py SCENARIO [BEAT_FILE]

Prints "ready" (or "ready PORT" for accept/select) once its main thread is about to
enter the scenario's loop. SIGUSR1 raises Stop in the main thread; main catches it and
exits 0, which proves the main thread and signal handling still work.

With BEAT_FILE the target proves it is still doing its own work: a counter is
rewritten there by the main thread (sleeploop: every iteration; busy: every 100000
iterations; select: every connection served) or, where the main thread only waits
(event, sleep), by a worker thread every 50 ms.
"""

import json
import os
import select
import signal
import socket
import sys
import threading
import time

BEAT = [None, 0]  # fd, counter


def beat():
    fd = BEAT[0]
    if fd is not None:
        BEAT[1] += 1
        os.pwrite(fd, ("%-20d\n" % BEAT[1]).encode(), 0)


def beat_forever():
    while True:
        beat()
        time.sleep(0.05)


class Stop(Exception):
    pass


def on_usr1(signum, frame):
    raise Stop()


def busy_forever():
    counter = 0
    while True:
        counter += 1
        if counter % 100000 == 0:
            beat()


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
    elif scenario == "csleep":
        # glibc sleep(): a relative clock_nanosleep that reports the time left; returning
        # early (EINTR) would end the scenario, and the process with it
        import ctypes

        ctypes.CDLL(None).sleep(1000000)
        os._exit(3)
    elif scenario == "sleeploop":
        while True:
            time.sleep(0.05 if BEAT[0] is not None else 0.2)
            beat()
    elif scenario in ("event", "threads"):
        threading.Event().wait()
    elif scenario == "accept":
        while True:
            conn, _ = server.accept()
            conn.sendall(b"ok")
            conn.close()
    elif scenario == "select":
        while True:
            select.select([server], [], [])  # blocked here, no timeout
            conn, _ = server.accept()
            conn.sendall(b"ok")
            conn.close()
            beat()
    elif scenario in ("busy", "threadsbusy"):
        busy_forever()
    elif scenario == "alloc":
        alloc_forever()
    else:
        raise SystemExit("unknown scenario %r" % scenario)


def main():
    scenario = sys.argv[1]
    signal.signal(signal.SIGUSR1, on_usr1)
    if len(sys.argv) > 2:
        BEAT[0] = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT, 0o600)
        if scenario in ("event", "sleep"):
            start_thread(beat_forever, "beat")
    start_workers(scenario)
    server = None
    if scenario in ("accept", "select"):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(8)
    # "ready" is printed inside the try: a Stop can come while print is still returning (its write lets go
    # of the GIL, and behind 25 busy threads on a loaded host main may get it back only after the test's
    # injection and SIGUSR1); raised before the try, it ended the process with status 1
    # (test_parked_worker_thread[3.13], once in a full run)
    try:
        try:
            print("ready %d" % server.getsockname()[1] if server is not None else "ready", flush=True)
            run(scenario, server)
        except Stop:
            # at once: the test resends SIGUSR1 every 2 s, and under load a second Stop landed in a flush
            # here and ended the process with status 1 (test_parked_worker_thread[3.9], once in a full run)
            os._exit(0)
    except Stop:
        os._exit(0)  # a resent Stop raised in the handler above before os._exit ran (3.8-3.10 check for it there)


if __name__ == "__main__":
    main()
