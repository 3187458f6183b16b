"""perf's recording is told to stop only once py-spy samples (readers/pyspy.record).

py-spy installs its Ctrl-C handler only after it has read the target: a SIGINT before that kills it
with no output and no file, and `perf -d 1` said "cannot sample pid N: py-spy failed" in a loaded
test run (measured: a SIGINT 1-10 ms after its start killed it, 30 ms after stopped it cleanly).
The stand-in below behaves that way, with a start slow enough to be past any duration given.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from typing import Any

import pytest

from flight_profiler.errors import TargetError
from flight_profiler.readers import pyspy

# argv: record --pid PID --output PATH --format F --rate R; SIGINT kills it until the banner is out
STAND_IN = """#!%(python)s
import os, signal, sys, time
out = sys.argv[sys.argv.index("--output") + 1]
signal.signal(signal.SIGINT, signal.SIG_DFL)  # as py-spy before its handler: killed, without a word
time.sleep(%(start)r)  # reading the target: no handler yet
stop = []
signal.signal(signal.SIGINT, lambda *a: stop.append(1))
print("py-spy> Sampling process 100 times a second. Press Control-C to exit.", flush=True)
chatter = time.monotonic() + %(chatter)r
while time.monotonic() < chatter and not stop:
    os.write(1, b"\\n")  # its later writes go where the offset it shares with the client is
while not stop:
    time.sleep(0.01)
with open(out, "w") as fh:
    fh.write("main;work 3\\n")
print("py-spy> Wrote raw flamegraph data to '%%s'. Samples: 3 Errors: 0" %% out, flush=True)
"""


def _stand_in(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, start: float, chatter: float = 0.0) -> None:
    path = os.path.join(str(tmp_path), "py-spy")
    with open(path, "w") as fh:
        fh.write(STAND_IN % {"python": sys.executable, "start": start, "chatter": chatter})
    os.chmod(path, stat.S_IRWXU)
    monkeypatch.setattr(pyspy, "executable", lambda: path)


def test_a_duration_shorter_than_py_spys_start_still_records(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in(tmp_path, monkeypatch, start=0.6)
    out = os.path.join(str(tmp_path), "profile.txt")
    started = time.monotonic()
    recording = pyspy.record(os.getpid(), out, fmt="collapsed", duration=0.2)
    assert recording.samples == 3 and recording.stopped == "duration"
    assert 0.2 <= recording.seconds < 5  # counted from the start of sampling, not of py-spy
    assert time.monotonic() - started >= 0.8  # its start, then the duration
    with open(out) as fh:
        assert fh.read() == "main;work 3\n"


def test_py_spy_that_never_begins_is_stopped_and_said(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in(tmp_path, monkeypatch, start=60)
    monkeypatch.setattr(pyspy, "START_WAIT", 0.3)
    with pytest.raises(TargetError, match="py-spy did not begin sampling pid %d within 0 s" % os.getpid()):
        pyspy.record(os.getpid(), os.path.join(str(tmp_path), "p.txt"), fmt="collapsed", duration=0.1)


def test_what_py_spy_writes_after_its_banner_never_hides_it(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """py-spy's output file shares its offset with the client's handle on it: a seek to 0 there, just before
    py-spy's next write, put that write over the banner ("py-spy>" became "\\ny-spy>"), and perf waited its 30 s
    for a banner that was gone (seen twice in full test runs). The client reads with pread now."""
    _stand_in(tmp_path, monkeypatch, start=0.05, chatter=0.5)
    monkeypatch.setattr(pyspy, "START_WAIT", 3.0)
    for _ in range(3):
        recording = pyspy.record(os.getpid(), os.path.join(str(tmp_path), "p.txt"), fmt="collapsed", duration=0.1)
        assert recording.samples == 3 and recording.stopped == "duration"
