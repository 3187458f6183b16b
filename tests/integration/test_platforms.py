"""Platforms we cannot serve are refused at once, before anything touches the target."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from flight_profiler.attach import target as target_mod
from flight_profiler.errors import TargetError
from support import cli

STATIC_311 = "/usr/bin/python3.11"  # Debian's: libpython linked in, so the executable's name is what maps


@pytest.mark.skipif(not os.access(STATIC_311, os.X_OK), reason="needs Debian's static /usr/bin/python3.11")
def test_free_threaded_build_is_refused_before_any_ptrace() -> None:
    # No free-threaded CPython is packaged for this machine; the build is recognised by the
    # executable's name (python3.13t / libpython3.13t.so), which is what this copy carries.
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, "python3.11t")
        shutil.copy(STATIC_311, fake)
        sleeper = subprocess.Popen([fake, "-c", "import time; time.sleep(60)"])
        try:
            time.sleep(0.5)
            result = cli(sleeper.pid, "module /x.py")
            assert result.returncode != 0
            assert "free-threaded build of Python 3.11 (python3.11t)" in result.errors[0]
            assert "Traceback" not in result.stderr
            assert sleeper.poll() is None
            with open("/proc/%d/status" % sleeper.pid) as fh:
                assert "TracerPid:\t0" in fh.read()
            # nothing was prepared for it: no socket, no bundle
            directory = "/tmp/flight_profiler-%d" % os.getuid()
            leftovers = (
                [n for n in os.listdir(directory) if "-%d." % sleeper.pid in n or "-%d-" % sleeper.pid in n]
                if os.path.isdir(directory)
                else []
            )
            assert leftovers == []
        finally:
            sleeper.kill()
            sleeper.wait()


FAKE_FREE_THREADED = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "targets", "fake_free_threaded.c"
)


@pytest.mark.parametrize("name", ["python3.13", "python3.14"])
def test_a_renamed_free_threaded_build_is_refused_by_its_exports(name: str) -> None:
    """A free-threaded build copied to a plain name (as into a container's image): its name says nothing, and
    it is told by what only such builds export, read from the file before anything touches it, and before
    the client runs it to compile our modules for its bytecode (it did, when it was found by the injection)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the stand-in")
    with tempfile.TemporaryDirectory() as tmp:
        # an interpreter's layout, root's own: the client would run it to compile our modules for its bytecode
        stdlib = os.path.join(tmp, "lib", name)
        os.makedirs(os.path.join(stdlib, "encodings"))
        for module in ("os.py", "encodings/__init__.py"):
            open(os.path.join(stdlib, module), "w").close()
        os.makedirs(os.path.join(tmp, "bin"))
        fake = os.path.join(tmp, "bin", name)
        subprocess.run([compiler, "-rdynamic", "-o", fake, FAKE_FREE_THREADED], check=True, timeout=120)
        sleeper = subprocess.Popen([fake, "spin"], stdout=subprocess.PIPE, text=True)
        try:
            assert sleeper.stdout is not None and sleeper.stdout.readline().startswith("ready")
            result = cli(sleeper.pid, "getglobal __main__ x")
            assert result.returncode != 0
            assert "free-threaded build of Python (%s exports _Py_DecRefShared)" % name in result.errors[0], (
                result.errors
            )
            assert "Traceback" not in result.stderr
            assert sleeper.poll() is None
            with open("/proc/%d/status" % sleeper.pid) as fh:
                assert "TracerPid:\t0" in fh.read()
            assert not os.path.exists(fake + ".ran"), "the client ran the target's executable"
        finally:
            sleeper.kill()
            sleeper.wait()


def test_other_machines_are_refused_with_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    class Uname:
        machine = "aarch64"

    monkeypatch.setattr(os, "uname", lambda: Uname())  # the os module target_mod calls
    with pytest.raises(TargetError) as info:
        target_mod.inspect(os.getpid())
    assert "Linux x86-64 only (this machine is aarch64; see docs/platforms.md)" in str(info.value)


def test_supported_range_follows_the_table() -> None:
    low, high = target_mod.SUPPORTED
    assert target_mod.supported_range() == "%d.%d to %d.%d" % (*low, *high)
