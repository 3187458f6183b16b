"""Where the agent's socket lives (client side).

``/tmp/flight_profiler-<uid>/agent-<pid>.sock`` inside the target's mount
namespace: one private (0700) directory per user, one socket per process. A
second client computes the same path and reuses the running agent.
"""

from __future__ import annotations

import os

from .target import Target


def private_dir(target: Target) -> str:
    """The directory as the target sees it."""
    return "/tmp/flight_profiler-%d" % target.uid


def socket_in_target(target: Target) -> str:
    return "%s/agent-%d.sock" % (private_dir(target), target.ns_pid)


def from_client(target: Target, path: str) -> str:
    """``path`` (in the target's namespace) as reachable from our namespace."""
    if target.same_root:
        return path
    return os.path.join(target.root, path.lstrip("/"))
