"""``flight_profiler demo``: start the demo service as a child and open the shell on it."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from ..attach.attacher import AttachOptions
from .output import Output
from .runner import Runner

SERVICE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo", "service.py")


def run_demo(output: Output, args: argparse.Namespace) -> int:
    # its own session: the terminal's Ctrl-C (which stops a watch) and SIGHUP never reach it;
    # --exit-with-parent: it leaves by itself if we are killed before our finally runs
    proc = subprocess.Popen(
        [sys.executable, SERVICE, "--exit-with-parent"], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "demo service running": it is ready
        output.note("demo service started: pid %d (it stops when you leave)" % proc.pid)
        output.note("try: stack | getglobal __main__ SETTINGS -x 2 | vmtool -a getInstances -c __main__ Order -n 3")
        options = AttachOptions(
            timeout=args.timeout, force=args.force, log=output.note if args.debug else lambda m: None
        )
        runner = Runner(proc.pid, output, options)
        if args.cmd is not None:
            from .main import run_once

            return run_once(runner, args.cmd)
        from .shell import run_shell

        return run_shell(runner)
    finally:
        proc.terminate()
        proc.wait(5)
