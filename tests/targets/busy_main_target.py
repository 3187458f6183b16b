"""A target whose main thread never waits in a system call: it computes in pure Python until SIGUSR1.

(The signal handler runs between bytecodes, in the same loop.) gilstat must not let frida's
injector stop such a thread mid-computation.
"""

import signal
import sys

STOP = []


def main():
    signal.signal(signal.SIGUSR1, lambda signum, frame: STOP.append(1))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    n = 0
    while not STOP:
        n += 1


if __name__ == "__main__":
    main()
