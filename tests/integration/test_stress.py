"""200 attach/command/detach cycles on one busy target: it stays healthy and does not grow."""

from __future__ import annotations

import pytest

from interpreters import find_interpreters
from support import cli, fd_count, start_target

CYCLES = 200


def _rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_repeated_attach_detach_cycles() -> None:
    python = find_interpreters()[-1][1]
    target = start_target(python, "service_target.py", "busy2")  # two CPU-bound threads
    try:
        fds: list[int] = []
        rss: list[int] = []
        for cycle in range(CYCLES):
            result = cli(target.pid, "getglobal __main__ CONFIG", timeout=60)
            assert result.returncode == 0, (cycle, result.stdout, result.stderr)
            assert cli(target.pid, "detach", timeout=60).returncode == 0, cycle
            fds.append(fd_count(target.pid))
            rss.append(_rss_kb(target.pid))
        assert fds[-1] <= fds[9], fds  # after warm-up, no fd leaks
        # each injection may leak one 4 KiB page by design (the pending-call buffer); allow that plus noise
        assert rss[-1] - rss[9] < 8 * 1024, (rss[9], rss[-1])
        assert target.healthy("busy2")
    finally:
        target.stop()
