"""A target whose threads run through take_gil/drop_gil as often as they can (gilstat's rewrite races).

Sixteen threads call ``time.sleep(0)`` in a loop: each call drops and takes the GIL, so at any
moment some thread is entering, leaving or inside those functions. SIGUSR1 ends it with exit
status 0.
"""

import signal
import threading
import time

STOP = threading.Event()


def churn():
    while not STOP.is_set():
        time.sleep(0)


def main():
    signal.signal(signal.SIGUSR1, lambda signum, frame: STOP.set())
    threads = [threading.Thread(target=churn, name="churn-%d" % i) for i in range(16)]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    while not STOP.is_set():
        time.sleep(0.05)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
