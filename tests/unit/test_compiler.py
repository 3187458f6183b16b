"""The start set compiled by a target's own interpreter (attach/compiler.py): the same bytes as
compiling it in the target, its output bounded and checked, and, as root, only a binary (and a
standard library) that nobody but root can change is ever run."""

from __future__ import annotations

import marshal
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from flight_profiler.attach import bundle, compiler

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root): files of another uid")


def _sources() -> tuple[list[str], list[tuple[str, str]]]:
    names, data = bundle.to_compile()
    text = data.decode("utf-8").split("\0")
    return names, [(text[at], text[at + 1]) for at in range(0, len(text) - 1, 2)]


def test_our_interpreter_makes_what_we_compile_ourselves() -> None:
    """The program's bytecode is the target's own compile's: byte for byte what bundle ships a target of
    our version (compiled here, or from our bytecode cache), for every module of the start set."""
    names, sources = _sources()
    magic, codes = compiler.compile_sources(sys.executable, sources, 30.0)
    from importlib.util import MAGIC_NUMBER

    assert magic == MAGIC_NUMBER.hex()
    ours = bundle._precompiled(bundle._collected())
    assert list(ours) == names
    for name, code in zip(names, codes):  # equal code objects (marshal's bytes differ by its reference flags)
        theirs, mine = marshal.loads(bytes.fromhex(code)), marshal.loads(bytes.fromhex(ours[name]))
        assert theirs == mine and theirs.co_filename == mine.co_filename == bundle._collected()[name][0], name
    fields = bundle.compose(magic, dict(zip(names, codes))).split("\0")
    shipped = {fields[at]: fields[at + 4] for at in range(1, len(fields) - 4, 5) if fields[at + 4]}
    assert fields[0] == magic and shipped == dict(zip(names, codes))


@pytest.fixture
def fake_interpreter() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="fp-fake-python-")
    yield os.path.join(directory, "python")
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("printf 'cb0d0d0a\\nzz'", "not the expected shape"),  # not hex
        ("printf 'cb0d0d0a\\n00'", "not the expected shape"),  # one code for two sources
        ("printf 'cb0d\\n00\\n00'", "not the expected shape"),  # a magic number of two bytes
        ("printf 'cb0d0d0a\\n00\\0\\n00'", "not the expected shape"),  # a NUL: it would split the bundle
        ("printf '\\377\\376'", "something other than hex"),
        ("head -c %d /dev/zero" % (compiler.OUTPUT_LIMIT + 10), "printed more than"),
        ("exit 3", "exit status 3"),
        ("exec sleep 30", "did not compile within 0.5 s"),
    ],
)
def test_a_bad_interpreter_is_one_line_and_leaves_nothing_running(
    fake_interpreter: str, script: str, message: str
) -> None:
    with open(fake_interpreter, "w") as fh:
        fh.write("#!/bin/sh\ncat > /dev/null\n%s\n" % script)
    os.chmod(fake_interpreter, 0o755)
    started = time.monotonic()
    with pytest.raises(compiler.CompileFailed, match=message) as caught:
        compiler.compile_sources(fake_interpreter, [("a.py", "A = 1\n"), ("b.py", "B = 2\n")], 0.5)
    assert "\n" not in str(caught.value) and time.monotonic() - started < 5
    ps = subprocess.run(["pgrep", "-f", fake_interpreter], capture_output=True, text=True, check=False)
    assert ps.stdout == "", "the interpreter was left running: %s" % ps.stdout


def test_a_missing_interpreter_says_so(fake_interpreter: str) -> None:
    with pytest.raises(compiler.CompileFailed, match=r"cannot run .*: No such file"):
        compiler.compile_sources(fake_interpreter, [("a.py", "A = 1\n")], 1.0)


def test_checked_takes_hex_only() -> None:
    assert compiler.checked("cb0d0d0a", ["00ff", ""], 2) == ("cb0d0d0a", ["00ff", ""])
    for magic, codes in [
        ("cb0d0d0a", ["00", "0\x00"]),
        ("cb0d0d0a", ["00", 5]),
        ("CB0D0D0A", ["00", "00"]),
        (None, ["00", "00"]),
        ("cb0d0d0a", "0000"),
        ("cb0d0d0a", ["00"]),
    ]:
        with pytest.raises(compiler.CompileFailed):
            compiler.checked(magic, codes, 2)


# ---------------------------------------------------------------------- as root: whose binary


@pytest.fixture
def tree() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="fp-owned-")  # 0700, ours, in sticky /tmp
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _file(directory: str, name: str = "python") -> str:
    path = os.path.join(directory, name)
    with open(path, "w") as fh:
        fh.write("#!/bin/sh\n")
    os.chmod(path, 0o755)
    return path


@as_root
def test_root_runs_only_files_nobody_else_can_change(tree: str) -> None:
    path = _file(tree)
    compiler._check_owned(path, file=True)  # root's, in root's directories (and sticky /tmp)

    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(compiler.CompileFailed, match="belongs to uid %d" % NOBODY):
        compiler._check_owned(path, file=True)
    os.chown(path, 0, 0)

    os.chmod(path, 0o757)
    with pytest.raises(compiler.CompileFailed, match="others may write %s" % path):
        compiler._check_owned(path, file=True)
    os.chmod(path, 0o755)

    os.chmod(tree, 0o777)  # a directory anyone may write: anyone could put another file there
    with pytest.raises(compiler.CompileFailed, match="others may write %s:" % tree):
        compiler._check_owned(path, file=True)
    os.chmod(tree, 0o1777)  # sticky: others may add entries, not replace root's
    compiler._check_owned(path, file=True)
    os.chmod(tree, 0o755)

    os.chown(tree, NOBODY, NOBODY)
    with pytest.raises(compiler.CompileFailed, match="%s belongs to uid %d" % (tree, NOBODY)):
        compiler._check_owned(path, file=True)


@as_root
def test_root_judges_a_link_and_where_it_leads(tree: str) -> None:
    theirs = os.path.join(tree, "theirs")
    os.mkdir(theirs)
    path = _file(theirs)
    link = os.path.join(tree, "link")
    os.symlink(path, link)
    compiler._check_owned(link, file=True)
    os.chown(theirs, NOBODY, NOBODY)  # where the link leads is another user's
    with pytest.raises(compiler.CompileFailed, match="belongs to uid %d" % NOBODY):
        compiler._check_owned(link, file=True)
    os.chown(theirs, 0, 0)
    os.lchown(link, NOBODY, NOBODY)  # the link itself is another user's
    with pytest.raises(compiler.CompileFailed, match="%s belongs to uid %d" % (link, NOBODY)):
        compiler._check_owned(link, file=True)


def _run(python: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [python, "-c", "import sys, time; print(1, flush=True); time.sleep(30)"], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"1\n"
    return proc


@as_root
def test_root_may_run_its_own_interpreter_and_not_a_users_copy(tree: str) -> None:
    version = (sys.version_info[0], sys.version_info[1])
    proc = _run(sys.executable)
    try:
        assert compiler.interpreter_root_may_run(proc.pid, version) == os.path.realpath(sys.executable)
    finally:
        proc.kill()
        proc.wait()
    bin_dir = os.path.join(tree, "bin")
    os.mkdir(bin_dir)
    copy = os.path.join(bin_dir, "python")
    shutil.copy(os.path.realpath(sys.executable), copy)  # finds its library and prefix as the original does
    os.chown(copy, NOBODY, NOBODY)
    proc = _run(copy)
    try:
        with pytest.raises(compiler.CompileFailed, match="%s belongs to uid %d: not run as root" % (copy, NOBODY)):
            compiler.interpreter_root_may_run(proc.pid, version)
        os.chown(copy, 0, 0)  # root's now, but no standard library beside it
        with pytest.raises(compiler.CompileFailed, match="no standard library next to"):
            compiler.interpreter_root_may_run(proc.pid, version)
        os.replace(_file(bin_dir, "other"), copy)  # the path names another file than the one running
        with pytest.raises(compiler.CompileFailed, match="is no longer the file pid %d runs" % proc.pid):
            compiler.interpreter_root_may_run(proc.pid, version)
    finally:
        proc.kill()
        proc.wait()
    assert stat.S_IMODE(os.stat(tree).st_mode) == 0o755


@pytest.mark.parametrize("name", ["python", "python3", "python3.12", "python3.12d", "python3.13t", "python3.8"])
def test_interpreter_names(name: str) -> None:
    assert compiler._INTERPRETER_NAME.match(name)


@pytest.mark.parametrize("name", ["uwsgi", "myapp", "python3.12-config", "blender", "ipython3", "python3.12.bak"])
def test_application_names(name: str) -> None:
    assert not compiler._INTERPRETER_NAME.match(name)


def test_an_application_that_embeds_python_is_not_run(tree: str) -> None:
    """A binary not named as an interpreter (uwsgi, an editor that embeds Python) is its own program:
    neither the compile nor PEP 768's remote_exec runs it with an interpreter's options."""
    from flight_profiler.attach import attacher
    from flight_profiler.attach.target import inspect

    app = os.path.join(tree, "myapp")
    shutil.copy(os.path.realpath(sys.executable), app)  # an interpreter in all but name
    proc = _run(app)
    try:
        with pytest.raises(compiler.CompileFailed, match="runs myapp, not a python interpreter"):
            compiler.interpreter_path(proc.pid)
        with pytest.raises(compiler.CompileFailed, match="runs myapp, not a python interpreter"):
            compiler.interpreter_root_may_run(proc.pid, (sys.version_info[0], sys.version_info[1]))
        target = inspect(proc.pid)._replace(uid=1000)  # as a non-root user's: remote_exec's case
        assert not attacher._remote_exec_allowed(target)
        assert attacher._remote_exec_allowed(inspect(os.getpid())._replace(uid=1000))  # an interpreter: allowed
    finally:
        proc.kill()
        proc.wait()
