"""Count what the agent's start asks of the kernel, from the bootstrap to the first answer (issue 14, goal 3).

Why a count: on a target whose N busy threads fight for the GIL, every system call the
agent makes through Python lets go of the GIL, and getting it back can cost a wait
behind the busy threads (up to N switch intervals). Wall times on a shared host vary
2x and more from run to run; this count does not.

How: a fresh interpreter runs the bootstrap source the client would inject (no ptrace:
``strace -f`` traces the process from its start instead), with the bundle and the
claim ticket written as the attacher writes them; a client shakes hands and runs
``module /x`` once. Counted: every system call of the target's threads between the
bootstrap's start and the agent's answer, by name, and the thread starts. The target
loads ``_socket``/``_json`` here if the application had not (five calls each): they are
listed apart. Needs strace. Not a test: nothing is asserted.
``PYTHONPATH=/other/src`` counts another checkout's bootstrap and agent (a before/after).

    .venv/bin/python bench/attach_syscalls.py [--pythons 3.8,3.12,3.14]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from flight_profiler.attach import bootstrap, bundle  # noqa: E402
from flight_profiler.attach.connection import AgentConnection  # noqa: E402
from interpreters import find_interpreters  # noqa: E402

# calls that never let go of the GIL, or are the allocator's and the thread library's own
QUIET = ("mprotect", "mmap", "munmap", "mremap", "brk", "rt_sig", "gettid", "rseq", "set_robust_list", "futex")
QUIET += ("getuid", "getpid", "umask", "getsockopt", "setsockopt", "getsockname", "clock_nanosleep", "madvise")
STEM = "agent-1-2-3"


def _script(directory: str) -> str:
    sock = os.path.join(directory, STEM + ".sock")
    ticket = STEM + ".ticket-bench"
    with open(os.path.join(directory, ticket), "w"):
        pass
    with open(bootstrap.bundle_path(sock), "w", encoding="utf-8") as fh:
        fh.write(bundle.text())
    size = bundle.size() if hasattr(bundle, "size") else None
    code = bootstrap.source(sock, time.time() + 60, ticket, *([size] if size is not None else []))
    # a target like the service target: threading, socket and json loaded by the application
    return (
        "import threading, socket, json, sys, time\nprint('go', flush=True)\nsys.stdin.readline()\n"
        + code
        + ("\ntime.sleep(30)\n")
    )


def count(python: str, sequence: bool = False) -> tuple[collections.Counter[str], int]:
    with tempfile.TemporaryDirectory(prefix="fp-bench-") as directory:
        os.chmod(directory, 0o700)
        boot = os.path.join(directory, "boot.py")
        with open(boot, "w") as fh:
            fh.write(_script(directory))
        log = os.path.join(directory, "strace.txt")
        proc = subprocess.Popen(
            ["strace", "-f", "-s", "256", "-o", log, python, boot],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdout.readline()
            proc.stdin.write("\n")
            proc.stdin.flush()
            sock = os.path.join(directory, STEM + ".sock")
            deadline = time.monotonic() + 30
            while not os.path.exists(sock) and time.monotonic() < deadline:
                time.sleep(0.02)
            conn = AgentConnection.open(sock, timeout=30)
            conn.run("module", {"path": "/x"}, timeout=30)
            conn.close()
            time.sleep(0.3)
        finally:
            proc.kill()
            proc.wait()
        with open(log) as fh:
            lines = fh.read().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\d+\s+read\(0,", line))
    end = next(i for i, line in enumerate(lines) if 'type\\":\\"end' in line)
    calls: collections.Counter[str] = collections.Counter()
    for line in lines[start + 1 : end + 1]:
        call = line.split(None, 1)[1].split("(", 1)[0]
        if not call.startswith(("<...", "+++", "---")) and not call.startswith(QUIET):
            calls[call] += 1
            if sequence:  # in order, with the thread: which step lets go of the GIL where
                print("    " + line[:160])
    return calls, calls.pop("clone3", 0) + calls.pop("clone", 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pythons", default="3.8,3.12,3.14", help="comma-separated interpreter ids")
    parser.add_argument("--sequence", action="store_true", help="also list the calls in order, by thread")
    args = parser.parse_args()
    wanted = set(args.pythons.split(","))
    print("| python | system calls that may let go of the GIL | thread starts | by name |")
    print("|---|---|---|---|")
    for name, python in find_interpreters():
        if name in wanted:
            calls, threads = count(python, args.sequence)
            detail = ", ".join("%s %d" % item for item in sorted(calls.items(), key=lambda kv: (-kv[1], kv[0])))
            print("| %s | %d | %d | %s |" % (name, sum(calls.values()), threads, detail), flush=True)


if __name__ == "__main__":
    main()
