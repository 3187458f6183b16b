"""A heap walk in a target under a CPU quota (half a CPU): what the target's other threads see, before and after.

The target (/tmp of this run) holds 1.5 M small lists and a thread that sleeps 5 ms in a loop and keeps its
gaps between wake-ups; it runs in a fresh child CPU cgroup of ours (v1 or v2) with a quota of 50 ms per
100 ms. For each source tree given (``--before`` an earlier checkout's ``src``, then ``--after``): attach,
read the gaps of an idle window, run ``mem summary``, read the gaps of the walk's window, detach. The
walk under the quota used 4 ms slices and 1 ms pauses (~80 % of a CPU, charged to the program's cgroup),
then pauses sized to take a quarter of the quota. Needs root. Nothing is asserted; results go to stdout and
bench/RESULTS-mem.md.

    .venv/bin/python bench/quota_walk.py --before /tmp/old/src [--after src] [--python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from stamp import stamp  # noqa: E402

from flight_profiler.attach import headroom  # noqa: E402
from interpreters import find_interpreters  # noqa: E402

TARGET = """
import threading, time
HEAP = [[i] for i in range(1500000)]
gaps = []
def ticker():
    last = time.monotonic()
    while True:
        time.sleep(0.005)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
def report():
    g = sorted(gaps)
    del gaps[:]
    return [len(g), g[-1] * 1000 if g else 0.0, g[int(len(g) * 0.99)] * 1000 if g else 0.0]
threading.Thread(target=ticker, daemon=True).start()
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def cli(src: str, pid: int, command: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
    argv = [sys.executable, "-m", "flight_profiler", str(pid), "--cmd", command, "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=600)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines or "error" in lines[-1]:
        raise RuntimeError("%s failed: %s %s" % (command, proc.stdout, proc.stderr))
    return lines[-1]["result"]


def gaps(src: str, pid: int) -> list:
    return cli(src, pid, "getglobal __main__ report -e 'target()'")["value"]["items"]


def measure(src: str, python: str, cgroup: str, version: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(TARGET)
    proc = subprocess.Popen([python, fh.name], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as out:
            out.write(str(proc.pid))
        gaps(src, proc.pid)  # attach; empties the gaps so far
        time.sleep(5)
        idle = [item["v"] for item in gaps(src, proc.pid)]
        started = time.monotonic()
        pacing = cli(src, proc.pid, "mem summary").get("pacing", {})
        seconds = time.monotonic() - started
        walk = [item["v"] for item in gaps(src, proc.pid)]
        env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
        subprocess.run([sys.executable, "-m", "flight_profiler", str(proc.pid), "--cmd", "detach"], env=env, check=True)
        return {"idle": idle, "walk": walk, "seconds": seconds, "pacing": pacing}
    finally:
        proc.kill()
        proc.wait()
        os.unlink(fh.name)


def make_cgroup() -> tuple:
    parent, _, version = headroom.cgroup_dirs(os.getpid(), "cpu")[0]
    directory = os.path.join(parent, "fp_quota_bench")
    if not os.path.isdir(directory):
        os.mkdir(directory)
    if version == 2:
        with open(os.path.join(directory, "cpu.max"), "w") as out:
            out.write("50000 100000")
    else:
        with open(os.path.join(directory, "cpu.cfs_period_us"), "w") as out:
            out.write("100000")
        with open(os.path.join(directory, "cpu.cfs_quota_us"), "w") as out:
            out.write("50000")
    return directory, version


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default=os.path.join(HERE, "..", "src"))
    parser.add_argument("--python", default=dict(find_interpreters()).get("3.12", ""))
    args = parser.parse_args()
    cgroup, version = make_cgroup()
    rows = []
    try:
        for label, src in (("before", args.before), ("after", args.after)):
            found = measure(src, args.python, cgroup, version)
            idle, walk = found["idle"], found["walk"]
            rows.append(
                "| %s | %.1f s | %s | %.1f / %.1f ms | %.1f / %.1f ms |"
                % (
                    label,
                    found["seconds"],
                    found["pacing"].get("pause_ms", 1.0),
                    idle[2],
                    idle[1],
                    walk[2],
                    walk[1],
                )
            )
            print(rows[-1], flush=True)
    finally:
        os.rmdir(cgroup)
    text = "\n".join(
        [
            "",
            "## A walk under a CPU quota of half a CPU (bench/quota_walk.py)",
            "",
            stamp(),
            "",
            "Target: %s, 1.5 M lists, a thread sleeping 5 ms in a loop; cgroup v%d, quota 50 ms / 100 ms. "
            "Gaps between the thread's wake-ups: p99 / max, in an idle window of 5 s and over `mem summary`."
            % (args.python, version),
            "",
            "| code | walk | pause ms | idle p99 / max | walk p99 / max |",
            "| --- | ---: | ---: | ---: | ---: |",
            *rows,
            "",
        ]
    )
    with open(os.path.join(HERE, "RESULTS-mem.md"), "a") as out:
        out.write(text)
    print(text)


if __name__ == "__main__":
    main()
