"""``flight_profiler ps`` against real process trees, and its verdicts checked against real attaches."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from interpreters import find_interpreters
from support import TARGETS, CliResult, RunningTarget, cli, start_target

INTERPRETERS = find_interpreters()
PREFORK = os.path.join(TARGETS, "ps_prefork.py")


class Family:
    """A server's master and workers, started under the name ps recognises (gunicorn, torchrun)."""

    def __init__(self, proc: subprocess.Popen[str], workers: list[int]) -> None:
        self.proc = proc
        self.workers = workers

    @property
    def master(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def start_family(python: str, directory: str, name: str, *args: str) -> Family:
    script = os.path.join(directory, name)
    shutil.copy(PREFORK, script)
    proc = subprocess.Popen([python, script, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ready"), line
    return Family(proc, [int(pid) for pid in line.split()[2].split(",")])


def ps(*args: str, json_output: bool = True) -> CliResult:
    argv = [sys.executable, "-m", "flight_profiler", "ps", *args, *(["--json"] if json_output else ["--no-color"])]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def by_pid(result: CliResult) -> dict[int, dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    [listing] = result.results
    return {proc["pid"]: proc for proc in listing["processes"]}


@pytest.fixture(scope="module", params=INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def families(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = str(tmp_path_factory.mktemp("servers"))
    gunicorn = start_family(request.param[1], directory, "gunicorn", "--workers", "2")
    torchrun = start_family(request.param[1], directory, "torchrun", "--spawn", "--workers", "2")
    version = subprocess.run(
        [request.param[1], "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    yield {"gunicorn": gunicorn, "torchrun": torchrun, "version": version}
    for family in (gunicorn, torchrun):
        agents = [pid for pid, proc in by_pid(ps(str(family.master))).items() if proc["agent"]]
        for pid in agents:
            cli(pid, "detach")
        family.stop()


def test_prefork_tree_roles_and_versions(families: dict[str, Any]) -> None:
    family: Family = families["gunicorn"]
    found = by_pid(ps(str(family.master)))
    assert set(found) == {family.master, *family.workers}
    master = found[family.master]
    assert master["role"] == "gunicorn master"
    assert sorted(master["children"]) == sorted(family.workers)
    for pid in family.workers:
        worker = found[pid]
        assert worker["role"] == "gunicorn worker" and worker["ppid"] == family.master
        assert worker["python"] == families["version"] and worker["attachable"] and worker["reason"] is None
        assert "gunicorn" in worker["cmdline"] and worker["uid"] == os.getuid()


def test_spawned_ranks_are_named(families: dict[str, Any]) -> None:
    family: Family = families["torchrun"]
    found = by_pid(ps(str(family.master)))
    assert found[family.master]["role"] == "torchrun launcher"
    ranks = sorted(found[pid]["role"] for pid in family.workers)
    assert ranks == ["torchrun worker (rank 0)", "torchrun worker (rank 1)"]


def test_attachable_means_attach_works_and_agent_is_reported(families: dict[str, Any]) -> None:
    family: Family = families["gunicorn"]
    worker = family.workers[0]
    assert by_pid(ps(str(worker)))[worker]["agent"] is False
    result = cli(worker, "getglobal __main__ STATE -e \"target['role']\"")
    assert result.returncode == 0, result.stderr
    assert result.results[0]["value"]["v"] == "worker"
    assert by_pid(ps(str(worker)))[worker]["agent"] is True
    assert cli(worker, "detach").returncode == 0
    assert by_pid(ps(str(worker)))[worker]["agent"] is False


@pytest.mark.any_interpreter  # the client's rendering
def test_text_view_draws_the_tree(families: dict[str, Any]) -> None:
    family: Family = families["gunicorn"]
    result = ps(str(family.master), json_output=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("3 Python process(es), 3 attachable")
    assert lines[1].startswith("%d  python %s" % (family.master, families["version"]))
    assert "[gunicorn master]" in lines[1]
    assert any(line.startswith(("├── %d" % pid, "└── %d" % pid)) for pid in family.workers for line in lines)


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningTarget]]:
    """Targets ps must call not attachable: opted out, stopped, and a Python too old (when one is here)."""
    python = INTERPRETERS[-1][1]
    targets = {
        "opted_out": start_target(python, "ps_prefork.py", "--workers", "0", env=_env(PYTHON_DISABLE_REMOTE_DEBUG="1")),
        "stopped": start_target(python, "ps_prefork.py", "--workers", "0"),
    }
    os.kill(targets["stopped"].pid, signal.SIGSTOP)
    old = os.path.expanduser("~/.pyenv/versions/3.7.16/bin/python")
    if os.access(old, os.X_OK):
        targets["py37"] = start_target(old, "ps_prefork.py", "--workers", "0")
    yield targets
    os.kill(targets["stopped"].pid, signal.SIGCONT)
    for target in targets.values():
        target.stop()


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, **extra)


@pytest.mark.parametrize(
    ("name", "reason", "attach_error"),
    [
        ("opted_out", "opted out of remote debugging", "opted out of remote debugging"),
        ("stopped", "is stopped (job control)", "stopped"),
        ("py37", "Python 3.7 is not supported", "supports 3.8 to 3.15"),
    ],
)
def test_not_attachable_says_why_and_attach_agrees(
    refused: dict[str, RunningTarget], name: str, reason: str, attach_error: str
) -> None:
    if name not in refused:
        pytest.skip("no Python 3.7 on this machine")
    pid = refused[name].pid
    entry = by_pid(ps(str(pid)))[pid]
    assert entry["attachable"] is False and reason in entry["reason"], entry
    result = cli(pid, "getglobal __main__ STATE", timeout=30)
    assert result.returncode != 0 and attach_error in result.errors[0], result.stdout
    assert pid not in by_pid(ps("--attachable"))


def test_another_user_sees_why_not(families: dict[str, Any]) -> None:
    if os.getuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run ps as another user")
    master = families["gunicorn"].master
    site = [path for path in sys.path if path.endswith("site-packages")]
    src = os.path.dirname(os.path.dirname(os.path.abspath(str(__import__("flight_profiler").__file__))))
    python = "/usr/bin/python3.11" if os.access("/usr/bin/python3.11", os.X_OK) else sys.executable
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-m", "flight_profiler", "ps"]
    env = _env(PYTHONPATH=os.pathsep.join([src, *site]))
    proc = subprocess.run([*argv, str(master), "--json"], capture_output=True, text=True, env=env, timeout=60)
    if proc.returncode != 0 and "Permission denied" in proc.stderr:
        pytest.skip("the unprivileged user cannot read our install: %s" % proc.stderr.strip().splitlines()[-1])
    found = by_pid(CliResult(proc.returncode, proc.stdout, proc.stderr))
    entry = found[master]
    assert entry["attachable"] is False and entry["python"] is None
    assert "runs as root (uid 0) and you are uid 65534" in entry["reason"]
    assert found[master]["children"], "the tree is still known from /proc"


def test_unknown_pid_is_one_error_line() -> None:
    result = ps("1")
    assert result.returncode == 3
    assert result.errors == ["no Python process with pid 1 (gone, or not Python)"]
