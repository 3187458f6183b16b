"""Target with real numpy arrays and torch tensors (whichever of the two this interpreter has).

Prints "ready" (stderr names the libraries it has). Python 3.8+.
"""

import sys
import time

have = []
try:
    import numpy

    MATRIX = numpy.arange(1_000_000, dtype=numpy.float32).reshape(1000, 1000)
    STRIDED = MATRIX[::2, ::3]  # not contiguous: still no copy
    have.append("numpy")
except ImportError:
    pass
try:
    import torch

    TENSOR = torch.zeros(8, 16, dtype=torch.bfloat16)
    WEIGHTS = {"w": torch.nn.Parameter(torch.ones(4, 2))}
    have.append("torch")
except ImportError:
    pass

print("arrays_target has:", " ".join(have) or "neither", file=sys.stderr, flush=True)
print("ready", flush=True)
while True:
    time.sleep(1)
