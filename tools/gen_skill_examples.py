"""Run every example in the skill files against the demo service and store the real output.

    .venv/bin/python tools/gen_skill_examples.py            # all skills
    .venv/bin/python tools/gen_skill_examples.py stack ps   # only flight-profiler-stack and -ps

Starts ``flight_profiler``'s demo service (src/flight_profiler/demo/service.py), runs each
``<!-- example: ... -->`` in file order (skills sorted by name, so examples that depend on
earlier ones, like ``tt -i`` after ``tt -t``, see the same history every time), writes the
output between the markers, then detaches and stops the demo. An example that fails when
it should not (or succeeds when marked ``fails``) stops the run without writing that file.
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


def start(argv: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # "demo service running, pid N" / "ready ..."
    return proc


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
    demo = start([sys.executable, SERVICE])
    prefork = start_prefork()
    time.sleep(1.0)  # let the demo's workers and asyncio loop get going, so stacks look like a live service
    subs = Substitutions({"pid": str(demo.pid), "prefork": str(prefork.pid), "demo": SERVICE, "tmp": TMP})
    ok = True
    try:
        for path in skill_files():
            skill = os.path.basename(os.path.dirname(path))
            if names and skill.replace("flight-profiler-", "") not in names:
                continue
            print(skill)
            ok = regenerate(path, subs) and ok
    finally:
        subprocess.run(
            [sys.executable, "-m", "flight_profiler", str(demo.pid), "--cmd", "detach"], capture_output=True, check=False
        )
        for proc in (demo, prefork):
            proc.terminate()
            proc.wait(10)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
