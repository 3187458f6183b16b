"""A target for ``gilstat``'s unhooking: calls are in flight through the hooks when they come off.

Four threads wake every 5 ms and take the GIL. SIGUSR2 makes the main thread hold the GIL
for HOLD seconds in pure Python (the switch interval is 100 s, so nothing forces it to let
go): meanwhile the four wait inside take_gil, and stay there while a gilstat that ends in
that window takes its hooks off. SIGUSR1 ends it with exit status 0.
"""

import signal
import sys
import threading
import time

HOLD = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
STOP = threading.Event()
HELD = {"count": 0}


def waiter():
    while not STOP.is_set():
        time.sleep(0.005)


def hold(signum, frame):
    started = time.monotonic()
    while time.monotonic() - started < HOLD:  # the GIL is ours throughout
        pass
    HELD["count"] += 1
    print("held", flush=True)


def main():
    sys.setswitchinterval(100.0)
    signal.signal(signal.SIGUSR1, lambda signum, frame: STOP.set())
    signal.signal(signal.SIGUSR2, hold)
    threads = [threading.Thread(target=waiter, name="waiter-%d" % i) for i in range(4)]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    while not STOP.is_set():
        STOP.wait(0.2)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
    sys.exit(0)
