"""The line every benchmark result starts with: which commit, which host, how loaded.

Ratios measured in one run are comparable across machines; absolute figures only make
sense next to the host and the load they were measured under.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def stamp() -> str:
    """A Markdown paragraph: date, commit, host, cores, CPU, kernel, load averages."""
    load = " / ".join("%.2f" % value for value in os.getloadavg())
    return "Measured %s at commit `%s` on %s (%d cores, %s, Linux %s), load average %s (1/5/15 min).\n" % (
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        _commit(),
        platform.node(),
        os.cpu_count() or 0,
        _cpu_model(),
        platform.release(),
        load,
    )
