"""``perf``: py-spy from our own install samples a real target into a flame graph (no injection)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from interpreters import find_interpreters
from support import RunningTarget, cli, start_target, target_fixture

INTERPRETERS = find_interpreters()
HOTSPOT = "burn_cpu_hotspot"


target = target_fixture("prof_burn_target.py", detach=False)


def only(result: object) -> dict:
    assert result.returncode == 0, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    results = result.results  # type: ignore[attr-defined]
    assert len(results) == 1, results
    return results[0]


@pytest.mark.any_interpreter  # an output format of the samples test_speedscope_json reads
def test_svg_flame_graph_names_the_hot_function(target: RunningTarget, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "fg.svg")
    result = cli(target.pid, "perf -d 1 -r 200 -f %s" % path)
    event = only(result)
    assert event["path"] == path and event["format"] == "svg" and event["stopped"] == "duration"
    assert event["samples"] > 0 and "file://%s" % path in event["open"]
    root = ET.parse(path).getroot()
    assert root.tag.rsplit("}", 1)[-1] == "svg"
    titles = " ".join(element.text or "" for element in root.iter() if element.tag.endswith("title"))
    assert HOTSPOT in titles
    assert "sampling pid %d" % target.pid in result.stderr  # progress goes to stderr, results to stdout


def test_speedscope_json(target: RunningTarget, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "profile.json")
    event = only(cli(target.pid, "perf -d 1 --format speedscope -f %s" % path))
    assert event["format"] == "speedscope"
    with open(path) as fh:
        data = json.load(fh)
    assert "speedscope" in data["$schema"]
    assert HOTSPOT in [frame["name"] for frame in data["shared"]["frames"]]


def test_collapsed_stacks_default_path_and_ctrl_c(tmp_path: object) -> None:
    """No -d: sampling runs until Ctrl-C and still writes the file, in the user's working directory."""
    python = INTERPRETERS[-1][1]
    running = start_target(python, "prof_burn_target.py")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flight_profiler", str(running.pid), "--cmd", "perf --format collapsed", "--json"],
            cwd=str(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Ctrl-C once py-spy has sampled a while: the first progress line comes 5 s into the sampling
        # (a fixed 2.5 s from the start landed in the client's imports at load 30: a traceback, exit -2)
        assert proc.stderr is not None
        said: list[str] = []
        while not said or not said[-1].startswith("sampling: "):
            said.append(proc.stderr.readline())
            assert said[-1], said
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (out, err)
        event = json.loads(out.splitlines()[-1])["result"]
        assert event["stopped"] == "interrupted"
        assert event["path"] == os.path.join(str(tmp_path), "profile.collapsed.txt")
        with open(event["path"]) as fh:
            lines = fh.read().splitlines()
        stack, count = lines[0].rsplit(" ", 1)
        assert int(count) > 0 and ";" in stack
        assert any(HOTSPOT in line for line in lines)
        assert running.healthy()
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("perf -r 0", "-r must be"),
        ("perf -d 0", "-d must be a positive"),
        ("perf -f /nonexistent-dir/fg.svg", "does not exist"),
        ("perf --format png", "invalid choice"),
    ],
)
def test_bad_input_is_one_line(command: str, message: str) -> None:
    result = cli(os.getpid(), command)
    assert result.returncode != 0
    assert len(result.errors) == 1 and message in result.errors[0], result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_not_a_python_process() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        result = cli(sleeper.pid, "perf -d 1 -f /tmp/never-written.svg")
        assert result.returncode != 0 and len(result.errors) == 1
        assert "Traceback" not in result.stdout + result.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
