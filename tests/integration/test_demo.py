"""`flight_profiler demo` in a real pseudo-terminal: the service lives in its own session, so
Ctrl-C stops a watch and never the service; the console's input()/help() never hang it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pexpect
import pytest

from support import wait_until

PROMPT = "flight_profiler>"


def alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def demo(tmp_path: object) -> Iterator[tuple[pexpect.spawn, int]]:
    env = dict(os.environ, HOME=str(tmp_path), NO_COLOR="1", TERM="xterm")
    child = pexpect.spawn(
        sys.executable, ["-m", "flight_profiler", "demo"], env=env, encoding="utf-8", timeout=30, dimensions=(40, 200)
    )
    child.expect(r"demo service started: pid (\d+)")
    service = int(child.match.group(1))
    child.expect_exact(PROMPT)
    yield child, service
    child.close(force=True)
    if alive(service):  # our client was SIGKILLed: the service leaves by itself
        assert wait_until(lambda: not alive(service), timeout=30)


def test_ctrl_c_stops_the_watch_not_the_service(demo: tuple[pexpect.spawn, int]) -> None:
    shell, service = demo
    assert os.getsid(service) == service  # a session of its own: no terminal signal reaches it
    shell.sendline("watch __main__ handle -n 100000")
    shell.expect_exact("cost=")
    shell.sendintr()
    shell.expect_exact("cancelled")
    shell.expect_exact(PROMPT)
    assert alive(service)
    shell.sendline("getglobal __main__ SETTINGS")
    shell.expect_exact("eu-west-1")
    shell.expect_exact(PROMPT)
    shell.sendline("quit")
    shell.expect(pexpect.EOF)
    assert wait_until(lambda: not alive(service), timeout=10)  # leaving the demo stops it


def test_console_input_and_help_are_answered(demo: tuple[pexpect.spawn, int]) -> None:
    shell, service = demo
    shell.sendline("console")
    shell.expect_exact(">>>")
    shell.sendline("input('name? ')")
    shell.expect_exact("input() is not available in the remote console")
    shell.expect_exact(">>>")
    shell.sendline("help()")
    shell.expect_exact("help() is interactive and not available in the remote console")
    shell.expect_exact(">>>")
    shell.sendline("help(len)")
    shell.expect_exact("Return the number of items")
    shell.expect_exact(">>>")
    shell.sendintr()  # Ctrl-C at the console's prompt: the console and the service stay
    shell.expect_exact(">>>")
    shell.sendline("exit()")
    shell.expect_exact(PROMPT)
    assert alive(service)


def test_readme_instances_command_always_shows_orders() -> None:
    argv = [sys.executable, "-m", "flight_profiler", "demo", "--json"]
    proc = subprocess.run(
        [*argv, "--cmd", "vmtool -a getInstances -c __main__ Order -n 3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    results = [json.loads(line)["result"] for line in proc.stdout.splitlines() if '"result"' in line]
    assert proc.returncode == 0 and len(results) == 1, proc.stdout + proc.stderr
    assert results[0]["count"] >= 3 and len(results[0]["instances"]) == 3
    assert not re.search(r"Traceback", proc.stderr)
