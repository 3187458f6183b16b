"""What an agent's start compiles in its target, before/after: source trees side by side (issue 13).

A first attach costs each target the CPU of its agent's start, and most of that is
``compile()`` of our modules' source (bench/RESULTS-fleet.md). For each source tree given
with ``--src`` (e.g. main's ``src`` and a branch's), and each interpreter, this starts an
idle target with an audit hook, runs the real CLI from that tree (``PYTHONPATH``; the bundle
is made from the same tree) with each command, and records every ``compile`` audit event
raised on our agent's threads up to the command's answer: the file and the size of the
source. It then compiles those very sources again in that interpreter, in a process of its
own (thread CPU, median of ``--repeat`` rounds), which is the compile CPU the agent's start
cost the target, without the target's other noise. Prints a Markdown table, stamped; nothing
is asserted.

    .venv/bin/python bench/agent_compile.py --src /work/main/src --src src [--python 3.8,3.12] [--cmd "getglobal __main__ STATE"]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from stamp import stamp  # noqa: E402

from interpreters import find_interpreters  # noqa: E402

# The target: an audit hook that keeps (file name, source) of every compile on a thread of ours
# (named flight_profiler-*), and on SIGUSR1 writes them out as JSON. Idle in Event.wait.
TARGET = r"""
import json, os, signal, sys, threading
STATE = {"role": "worker", "requests": 0}
SEEN = []
def hook(event, args):
    if event != "compile":
        return
    thread = threading._active.get(threading.get_ident())
    if thread is not None and thread.name.startswith("flight_profiler") and isinstance(args[0], (str, bytes)):
        source = args[0] if isinstance(args[0], str) else args[0].decode("utf-8")
        SEEN.append((str(args[1]), source))
def dump(signum, frame):
    with open(sys.argv[1] + ".part", "w") as fh:
        json.dump(SEEN, fh)
    os.replace(sys.argv[1] + ".part", sys.argv[1])
signal.signal(signal.SIGUSR1, dump)
sys.addaudithook(hook)
print("ready", flush=True)
threading.Event().wait()
"""

# Compiles each tree's recorded sources, the trees in turn in every round (the same load for each),
# REPEAT rounds; prints each tree's median round in thread CPU (ms), one line each.
TIMER = r"""
import json, sys, time
sets = json.load(open(sys.argv[1]))
rounds = [[] for _ in sets]
for _ in range(int(sys.argv[2])):
    for index, sources in enumerate(sets):
        start = time.thread_time()
        for filename, source in sources:
            compile(source, filename, "exec")
        rounds[index].append(time.thread_time() - start)
for times in rounds:
    print(sorted(times)[len(times) // 2] * 1000)
"""


def recorded(python: str, src: str, commands: list[str], scratch: str) -> list[tuple[str, str]]:
    """(file name, source) of every compile on the agent's threads for ``commands``, run from ``src``."""
    record = os.path.join(scratch, "record.json")
    proc = subprocess.Popen(
        [python, "-c", TARGET, record], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd="/"
    )
    env = dict(os.environ, PYTHONPATH=src)
    cli = [sys.executable, "-m", "flight_profiler", str(proc.pid)]
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
        for command in commands:
            done = subprocess.run([*cli, "--cmd", command, "--json"], capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise RuntimeError("%s from %s: %s" % (command, src, done.stderr.strip()))
        os.kill(proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not os.path.exists(record) and time.monotonic() < deadline:
            time.sleep(0.02)
        with open(record) as fh:
            seen = [(name, source) for name, source in json.load(fh)]
        subprocess.run([*cli, "--cmd", "detach"], capture_output=True, env=env, check=False)
        return seen
    finally:
        proc.kill()
        proc.wait()
        for name in (record, record + ".part"):
            if os.path.exists(name):
                os.unlink(name)


def compile_ms(python: str, sets: list[list[tuple[str, str]]], repeat: int, scratch: str) -> list[float]:
    path = os.path.join(scratch, "sources.json")
    with open(path, "w") as fh:
        json.dump(sets, fh)
    out = subprocess.run([python, "-c", TIMER, path, str(repeat)], capture_output=True, text=True, check=True)
    return [float(line) for line in out.stdout.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", action="append", required=True, help="a source tree (repeatable)")
    parser.add_argument("--python", default="3.8,3.11,3.12,3.14", help="interpreter ids (tests/interpreters.py)")
    parser.add_argument("--cmd", action="append", help="the commands run (default: one getglobal)")
    parser.add_argument("--repeat", type=int, default=21)
    args, _ = parser.parse_known_args()
    commands = args.cmd or ["getglobal __main__ STATE"]
    wanted = args.python.split(",")
    trees = [os.path.abspath(tree) for tree in args.src]
    lines = [
        "## What an agent's start compiles in its target (bench/agent_compile.py)",
        "",
        stamp(),
        "Commands: %s, on an idle target, CLI and bundle from each tree. Compiles: the `compile` audit events"
        " on the agent's threads up to the answer; CPU: those sources compiled again in that interpreter"
        " (thread CPU, median of %d rounds)." % (", ".join("`%s`" % c for c in commands), args.repeat),
        "",
        "| interpreter | %s |" % " | ".join("`%s`" % tree for tree in trees),
        "| --- | %s |" % " | ".join("---" for _ in trees),
    ]
    with tempfile.TemporaryDirectory(prefix="fp-agent-compile-") as scratch:
        for name, python in find_interpreters():
            if name not in wanted:
                continue
            sets = [recorded(python, tree, commands, scratch) for tree in trees]
            cells = [
                "%d modules, %d kB, %.1f ms" % (len(sources), sum(len(source) for _, source in sources) // 1000, ms)
                for sources, ms in zip(sets, compile_ms(python, sets, args.repeat, scratch))
            ]
            lines.append("| %s | %s |" % (name, " | ".join(cells)))
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
