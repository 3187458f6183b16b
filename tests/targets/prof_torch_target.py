"""A target for ``torch``: a small CPU model whose forward pass runs every 0.2 s; SIGUSR1 ends it (exit 0).

Needs torch importable (tests run it with bench/.venvs/torch311, see ensure_torch_env.sh).
"""

import os
import signal
import sys
import threading

import torch
from torch import nn

STOP = threading.Event()


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.layers(x).softmax(dim=-1)


def never_called():
    return 0


def main():
    signal.signal(signal.SIGUSR1, lambda signum, frame: STOP.set())
    model = TinyNet()
    batch = torch.randn(32, 64)
    print("ready %d" % os.getpid(), flush=True)
    with torch.no_grad():
        while not STOP.wait(0.2):
            model(batch)


if __name__ == "__main__":
    main()
    sys.exit(0)
