"""Run every example in the skill files against the demo service and store the real output.

    .venv/bin/python tools/gen_skill_examples.py            # all skills
    .venv/bin/python tools/gen_skill_examples.py stack ps   # only flight-profiler-stack and -ps

Starts ``flight_profiler``'s demo service (src/flight_profiler/demo/service.py), a fresh one
per skill, runs each ``<!-- example: ... -->`` of the skill in file order (so examples that
depend on earlier ones, like ``tt -i`` after ``tt -t``, see the same history every time),
writes the output between the markers, then detaches and stops the demo. ps examples also
use a pre-fork server, torch examples a small PyTorch model (when its venv exists). An
example that fails when it should not (or succeeds when marked ``fails``) stops that skill
without writing its file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from flight_profiler.cli.demo import SERVICE
from flight_profiler.skills import skill_files
from flight_profiler.skills.markers import Substitutions, body_for, examples, run_example, with_bodies

TMP = "/tmp/flight_profiler-skill-examples"


PREFORK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "targets", "ps_prefork.py")


def start(argv: list[str], quiet: bool = False) -> subprocess.Popen[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL if quiet else None, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # "demo service running, pid N" / "ready ..."
    return proc


TORCH_PYTHON = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", ".venvs", "torch311", "bin", "python"
)
TORCH_TARGET = os.path.join(os.path.dirname(PREFORK), "prof_torch_target.py")


def start_torch() -> subprocess.Popen[str] | None:
    """The small PyTorch model of tests/targets, when tests/targets/ensure_torch_env.sh has made its venv."""
    if not os.access(TORCH_PYTHON, os.X_OK):
        print("no %s: the torch examples keep their stored output" % TORCH_PYTHON)
        return None
    return start([TORCH_PYTHON, TORCH_TARGET], quiet=True)


def start_prefork() -> subprocess.Popen[str]:
    """The pre-fork server, under the name gunicorn's own script has: ps names the tree by it."""
    script = os.path.join(TMP, "gunicorn")
    shutil.copy(PREFORK, script)
    return start([sys.executable, script, "--workers", "2"])


def regenerate(path: str, subs: Substitutions) -> bool:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    bodies = []
    for example in examples(text):
        if example.needs == "torch" and "torch" not in subs.values:
            bodies.append(example.body)
            continue
        try:
            proc = run_example(example, subs)
        except subprocess.TimeoutExpired:
            print("%s: `%s` did not finish in time" % (path, example.args))
            return False
        failed = proc.returncode != 0
        if failed != example.fails:
            print("%s: `%s` exited %d\n%s%s" % (path, example.args, proc.returncode, proc.stdout, proc.stderr))
            return False
        output = proc.stdout + proc.stderr
        bodies.append(body_for(example, subs, output))
        print("  ok  %s" % example.args)
    new = with_bodies(text, bodies)
    if new != text:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(new)
    return True


def main(names: list[str]) -> int:
    os.makedirs(TMP, exist_ok=True)
    prefork = start_prefork()
    torch = start_torch() if not names or "torch" in names else None
    ok = True
    try:
        for path in skill_files():
            skill = os.path.basename(os.path.dirname(path))
            if names and skill.replace("flight-profiler-", "") not in names:
                continue
            print(skill)
            ok = run_skill(path, prefork, torch) and ok
    finally:
        for proc in (prefork, torch):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
    return 0 if ok else 1


def run_skill(path: str, prefork: subprocess.Popen[str], torch: subprocess.Popen[str] | None) -> bool:
    """One skill's examples, in order, against a fresh demo service (so no skill sees another's leftovers)."""
    demo = start([sys.executable, SERVICE])
    time.sleep(1.0)  # let the demo's workers and asyncio loop get going, so stacks look like a live service
    values = {"pid": str(demo.pid), "prefork": str(prefork.pid), "demo": SERVICE, "tmp": TMP}
    if torch is not None:
        values["torch"] = str(torch.pid)
    try:
        return regenerate(path, Substitutions(values))
    finally:
        detach = [sys.executable, "-m", "flight_profiler", str(demo.pid), "--cmd", "detach"]
        subprocess.run(detach, capture_output=True, check=False)
        demo.terminate()
        demo.wait(10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
