"""Target for bounded captures: big objects whose full repr would cost the target dearly.

Usage: capture_target.py [BIG_MB]  (default 200; bench/capture.py uses 1024)
Prints "ready" once BIG is resident. A thread passes PAYLOAD (100 MB) to ``consume``
and BIG_DICT (100 000 entries) to ``lookup`` every 20 ms, for watch. Stdlib only; Python 3.8+.
"""

import sys
import threading
import time

MB = 2**20
BIG = bytearray(b"\x01") * (int(sys.argv[1]) * MB if len(sys.argv) > 1 else 200 * MB)  # filled: resident
PAYLOAD = b"\x02" * (100 * MB)
HUGE_INT = 10**5000
BIG_DICT = {"key%d" % i: i for i in range(100000)}


class ndarray:  # named like numpy's, to be recognised without numpy
    __module__ = "numpy"
    shape = (2000, 3)
    dtype = "float32"

    def __repr__(self):
        raise AssertionError("the whole array was repr'd")

    def __len__(self):
        raise AssertionError("the whole array was measured")


class Tensor:
    __module__ = "torch"
    shape = (8, 16)
    dtype = "torch.bfloat16"
    device = "cuda:1"

    def __repr__(self):
        raise AssertionError("the whole tensor was repr'd")


ARRAY = ndarray()
TENSOR = Tensor()


def consume(data):
    return len(data)


def lookup(table):
    return table.get("key7")


def caller():
    while True:
        consume(PAYLOAD)
        lookup(BIG_DICT)
        time.sleep(0.02)


threading.Thread(target=caller, name="caller", daemon=True).start()
print("ready", flush=True)
while True:
    time.sleep(1)
