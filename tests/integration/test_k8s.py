"""``flight_profiler k8s`` against a stand-in ``kubectl`` (there is no cluster here).

The stand-in, written by this test onto PATH, implements what the transport uses:
``get pods -o json`` and ``get pod NAME -o json`` (from a state file), ``exec -i`` (the command
runs in the "pod": its own pid and mount namespaces, entered with nsenter, with a clean
environment, in the image's WORKDIR when FAKE_KUBE_WORKDIR names one; its standard input
passed on) and ``debug --target --profile=general`` (an "ephemeral
container": a process in the pod's pid namespace with a mount namespace of its own and a private
tmpfs on /tmp, as another image's container would have). Each pod is ``unshare --pid --fork --mount-proc`` around a prefork server, so pid 1
is its master in every pod. Everything above kubectl is the production code path.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flight_profiler.attach import paths
from flight_profiler.attach.target import inspect
from json_schemas import problems
from support import TARGETS, CliResult

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
PODS = (("shop", "web-0", "web"), ("shop", "web-1", "web"), ("shop", "web-2", "web"), ("shop", "db-0", "db"))

KUBECTL = textwrap.dedent(
    """\
    #!{python}
    import json, os, shutil, subprocess, sys, time
    with open(os.environ["FAKE_KUBE_STATE"]) as fh:
        pods = json.load(fh)
    args = sys.argv[1:]
    def option(name):  # kubectl's own options come before "--"
        if name in args[: args.index("--") if "--" in args else len(args)]:
            at = args.index(name)
            value = args[at + 1]
            del args[at : at + 2]
            return value
    def pod(namespace, name):
        for item in pods:
            if (item["namespace"], item["name"]) == (namespace, name):
                return item
        sys.exit("Error from server (NotFound): pods %r not found" % name)
    def debuggers(namespace, name):  # ephemeral containers: one file each (pods are worked on in parallel)
        found = {{}}
        for entry in sorted(os.listdir(STATE_DIR)):
            if entry.startswith("%s_%s_" % (namespace, name)):
                with open(os.path.join(STATE_DIR, entry)) as fh:
                    found[entry[len(namespace) + len(name) + 2 :]] = json.load(fh)
        return found
    def container_pid(namespace, name, container):
        if container in debuggers(namespace, name):
            return debuggers(namespace, name)[container]["pid"]
        return pod(namespace, name)["pid"]
    STATE_DIR = os.environ["FAKE_KUBE_STATE"] + ".d"
    os.makedirs(STATE_DIR, exist_ok=True)
    verb = args.pop(0)
    if verb == "get" and args[0] == "pod":
        namespace = option("-n") or "default"
        found = pod(namespace, args[1])
        statuses = [
            {{"name": key, "state": {{"running": {{}}}} if os.path.exists("/proc/%d" % value["pid"]) else {{"terminated": {{}}}}}}
            for key, value in debuggers(namespace, args[1]).items()
        ]
        print(json.dumps({{"metadata": {{"name": found["name"], "namespace": namespace}},
                          "spec": {{"containers": [{{"name": "app"}}]}},
                          "status": {{"phase": "Running", "ephemeralContainerStatuses": statuses}}}}))
    elif verb == "debug":
        namespace = option("-n") or "default"
        cut = args.index("--")
        flags = dict(arg[2:].split("=", 1) for arg in args[1:cut])
        found = pod(namespace, args[0])
        assert flags["profile"] == "general" and flags["target"] == "app" and flags["image"], flags
        # its own mount namespace with a private /tmp, sharing the pod's processes (like --target)
        script = "mount -t tmpfs tmpfs /tmp && exec " + " ".join(args[cut + 1 :])
        nsenter = subprocess.Popen(
            ["nsenter", "-t", str(found["pid"]), "-p", "-m", "--", "unshare", "-m", "--propagation", "private",
             "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        while True:  # the container's process, as this host sees it, once it runs its command
            with open("/proc/%d/task/%d/children" % (nsenter.pid, nsenter.pid)) as fh:
                children = fh.read().split()
            if children and open("/proc/%s/comm" % children[0]).read().strip() == "sleep":
                break
            time.sleep(0.02)
        with open(os.path.join(STATE_DIR, "%s_%s_%s" % (namespace, args[0], flags["container"])), "w") as fh:
            json.dump({{"pid": int(children[0]), "image": flags["image"]}}, fh)
    elif verb == "get":
        namespace, selector = option("-n") or "default", option("-l")
        key, _, value = (selector or "").partition("=")
        items = [
            {{"metadata": {{"name": p["name"], "namespace": p["namespace"], "labels": p["labels"]}},
              "status": {{"phase": "Running"}}}}
            for p in pods
            if p["namespace"] == namespace and (not selector or p["labels"].get(key) == value)
        ]
        print(json.dumps({{"kind": "List", "items": items}}))
    elif verb == "exec":
        namespace, container = option("-n") or "default", option("-c")
        args.remove("-i")
        cut = args.index("--")
        pid = container_pid(namespace, args[0], container)
        env = {{"PATH": "/usr/local/bin:/usr/bin:/bin"}}
        workdir = os.environ.get("FAKE_KUBE_WORKDIR")  # cd'd into inside the pod
        chdir = ["sh", "-c", 'cd "$0" && exec "$@"', workdir] if workdir else []
        os.execvpe("nsenter", ["nsenter", "-t", str(pid), "-p", "-m", "--", *chdir, *args[cut + 1 :]], env)
    else:  # cp among them: --copy sends its zipapp over exec's stdin, never to a file of a fixed name
        sys.exit("stand-in kubectl: %s is not implemented" % verb)
    """
)


class Cluster:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.launchers: list[subprocess.Popen[str]] = []
        self.pods: list[dict[str, Any]] = []
        bin_dir = os.path.join(directory, "bin")
        os.makedirs(bin_dir)
        with open(os.path.join(bin_dir, "kubectl"), "w") as fh:
            fh.write(KUBECTL.format(python=sys.executable))
        os.chmod(os.path.join(bin_dir, "kubectl"), 0o755)
        self.env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"])
        self.env["FAKE_KUBE_STATE"] = os.path.join(directory, "pods.json")

    def start(
        self, namespace: str, name: str, app: str, mounts: str = "mount -t tmpfs -o mode=1777 tmpfs /tmp"
    ) -> None:
        """A pod running a prefork server; ``mounts``: run in its mount namespace first (a /tmp of its own)."""
        if os.path.realpath(SRC).startswith("/tmp/") or os.path.realpath(TARGETS).startswith("/tmp/"):
            pytest.skip("the checkout is under /tmp, which each pod hides under a tmpfs of its own")
        pod = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, os.path.join(TARGETS, "ps_prefork.py")]
        launcher = subprocess.Popen(  # mounted before the pid namespace is made: the server is its pid 1, as before
            ["unshare", "-m", "--propagation", "private", "sh", "-c", mounts + ' && exec "$@"', "sh", *pod],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert launcher.stdout is not None
        assert launcher.stdout.readline().startswith("ready")
        self.launchers.append(launcher)
        with open("/proc/%d/task/%d/children" % (launcher.pid, launcher.pid)) as fh:
            init = int(fh.read().split()[0])  # the pod's pid 1, as this host sees it
        self.pods.append({"namespace": namespace, "name": name, "labels": {"app": app}, "pid": init})
        with open(self.env["FAKE_KUBE_STATE"], "w") as fh:
            json.dump(self.pods, fh)

    def pid1(self, name: str) -> int:
        return next(int(pod["pid"]) for pod in self.pods if pod["name"] == name)

    def k8s(self, *words: str) -> CliResult:
        argv = [sys.executable, "-m", "flight_profiler", "k8s", *words]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=self.env, check=False)
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    def stop(self) -> None:
        for launcher in self.launchers:
            launcher.kill()  # unshare; its child is the pod's init: killed below, taking the pod with it
        for pod in self.pods:
            try:
                os.kill(pod["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        for launcher in self.launchers:
            launcher.wait(10)
            assert launcher.stdout is not None
            launcher.stdout.close()


INSTALLED = "env PYTHONPATH=%s %s -m flight_profiler" % (SRC, sys.executable)  # "installed in the image"


@pytest.fixture
def cluster(tmp_path: Any) -> Iterator[Cluster]:
    if not shutil.which("unshare") or not shutil.which("nsenter") or os.geteuid() != 0:
        pytest.skip("needs root, unshare and nsenter")
    found = Cluster(str(tmp_path))
    try:
        for pod in PODS:
            found.start(*pod)
        yield found
        found.k8s("-n", "shop", "-l", "app=web", "--remote-command", INSTALLED, "--", "--tree", "1", "--cmd", "detach")
    finally:
        found.stop()


def checked(result: CliResult) -> list[dict[str, Any]]:
    for record in result.records:
        assert problems(record) == [], record
    return result.records


def test_a_command_over_every_selected_pod_is_merged(cluster: Cluster) -> None:
    result = cluster.k8s(
        "-n",
        "shop",
        "-l",
        "app=web",
        "--remote-command",
        INSTALLED,
        "--json",
        "--",
        "--tree",
        "1",
        "--cmd",
        "stack",
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    records = checked(result)
    seen = {(r["target"]["pod"]["name"], r["target"]["pid"]) for r in records if "result" in r}
    assert seen == {(pod, pid) for pod in ("web-0", "web-1", "web-2") for pid in (1, 2, 3)}  # not db-0
    [line] = [r["fleet"] for r in records if "fleet" in r]
    assert line["failed"] == [] and "shop/web-1:2" in line["ok"]
    assert "6 of 6 workers in `serve_forever`" in line["merged"]["summary"]
    assert "3 of 3 masters" in line["merged"]["summary"]
    text = cluster.k8s(
        "-n",
        "shop",
        "-l",
        "app=web",
        "--remote-command",
        INSTALLED,
        "--no-color",
        "--",
        "--tree",
        "1",
        "--cmd",
        "stack",
    )
    assert text.returncode == 0, text.stderr
    assert "6 of 6 workers in `serve_forever`" in text.stdout and text.stdout.count("Thread MainThread") == 1
    assert "stack on 9 process(es): 9 ok" in text.stderr


def test_a_pod_that_is_gone_fails_alone(cluster: Cluster) -> None:
    os.kill(cluster.pid1("web-1"), signal.SIGKILL)
    result = cluster.k8s(
        "-n",
        "shop",
        "-l",
        "app=web",
        "--remote-command",
        INSTALLED,
        "--json",
        "--",
        "--tree",
        "1",
        "--cmd",
        "getglobal __main__ STATE",
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    records = checked(result)
    assert {r["target"]["pod"]["name"] for r in records if "result" in r} == {"web-0", "web-2"}
    [error] = [r for r in records if "error" in r]
    assert error["target"]["pod"] == {"namespace": "shop", "name": "web-1"}


def _client_files(directory: str) -> set[str]:
    """What a client run from a zipapp could leave there: the archive, or its unpacked mkdtemp directory."""
    return {n for n in os.listdir(directory) if n == "flight_profiler.pyz" or re.match(r"flight_profiler-\w{8}$", n)}


def test_copied_in_as_one_file_with_a_bare_python(cluster: Cluster) -> None:
    """--copy: a zipapp over exec's stdin, run by the pod's own python3 (no rich, no flight_profiler), and gone."""
    bare = shutil.which("python3", path="/usr/bin")
    if bare is None:
        pytest.skip("no /usr/bin/python3")
    result = cluster.k8s(
        "-n",
        "shop",
        "web-2",
        "--copy",
        "--remote-command",
        bare,
        "--json",
        "--",
        "1",
        "--cmd",
        "getglobal __main__ STATE -e \"target['role']\"",
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    [record] = [r for r in checked(result) if "result" in r]
    assert record["result"]["value"]["v"] == "master"
    assert record["target"]["pid"] == 1 and record["target"]["pod"]["name"] == "web-2"
    assert _client_files("/proc/%d/root/tmp" % cluster.pid1("web-2")) == set()  # nothing of the client is left


def test_copy_imports_nothing_from_the_pods_working_directory(cluster: Cluster) -> None:
    """The image's WORKDIR is often the application's, writable by its user: its hashlib.py is not ours to run."""
    bare = shutil.which("python3", path="/usr/bin")
    if bare is None:
        pytest.skip("no /usr/bin/python3")
    workdir = "/proc/%d/root/tmp/app" % cluster.pid1("web-1")  # /tmp/app in the pod
    os.mkdir(workdir)
    marker = "/proc/%d/root/tmp/planted-code-ran" % cluster.pid1("web-1")
    for module in ("hashlib", "zipfile", "shutil", "tempfile", "stat"):
        with open(os.path.join(workdir, module + ".py"), "w") as fh:
            fh.write(
                "open('/tmp/planted-code-ran', 'a').write(%r)\nraise SystemExit('planted %s ran')\n" % (module, module)
            )
    env = dict(cluster.env, FAKE_KUBE_WORKDIR="/tmp/app")
    argv = [sys.executable, "-m", "flight_profiler", "k8s", "-n", "shop", "web-1", "--copy"]
    argv += ["--remote-command", bare, "--json", "--", "1", "--cmd", "getglobal __main__ STATE -e \"target['role']\""]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert not os.path.exists(marker), "planted code ran"
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    [record] = [r for r in CliResult(proc.returncode, proc.stdout, proc.stderr).records if "result" in r]
    assert record["result"]["value"]["v"] == "master"


def test_copy_into_a_pod_whose_tmp_is_read_only(cluster: Cluster) -> None:
    """readOnlyRootFilesystem: the client unpacks under /dev/shm, and the agent's directory goes there too."""
    bare = shutil.which("python3", path="/usr/bin")
    if bare is None:
        pytest.skip("no /usr/bin/python3")
    cluster.start(
        "shop", "ro-0", "ro", mounts="mount -t tmpfs -o ro tmpfs /tmp && mount -t tmpfs -o mode=1777 tmpfs /dev/shm"
    )
    words = ["-n", "shop", "ro-0", "--copy", "--remote-command", bare, "--json", "--", "1"]
    result = cluster.k8s(*words, "--cmd", "getglobal __main__ STATE -e \"target['role']\"")
    assert result.returncode == 0, (result.stdout, result.stderr)
    [record] = [r for r in checked(result) if "result" in r]
    assert record["result"]["value"]["v"] == "master"
    root = "/proc/%d/root" % cluster.pid1("ro-0")
    assert os.listdir(root + "/dev/shm") == ["flight_profiler-0"] and os.listdir(root + "/tmp") == []
    detached = cluster.k8s(*words, "--cmd", "detach")  # the client's own command, relayed from the pod
    assert detached.returncode == 0, (detached.stdout, detached.stderr)
    assert "pod shop/ro-0: pid 1: detached" in detached.stderr, detached.stderr
    assert os.listdir(root + "/dev/shm/flight_profiler-0") == [paths.lock_name(inspect(cluster.pid1("ro-0")))]


def test_bad_remote_commands_never_reach_a_pod(cluster: Cluster) -> None:
    result = cluster.k8s(
        "-n",
        "shop",
        "-l",
        "app=web",
        "--json",
        "--",
        "--all",
        "--cmd",
        "nosuch",
    )
    assert result.returncode == 2 and "unknown command" in result.errors[0]
    result = cluster.k8s(
        "-n",
        "shop",
        "-l",
        "app=nothing",
        "--json",
        "--",
        "--all",
        "--cmd",
        "stack",
    )
    assert result.returncode == 2 and "no running pod" in result.errors[0]


HOSTILE = (
    "import json, sys\n"
    "sys.stderr.write('noise\\n' * 50000)\n"  # more than a pipe holds, before any answer: drained beside stdout
    "print('[' * 100000 + ']' * 100000)\n"  # nesting deeper than the JSON parser's stack
    "print('not json \\x1b[2J')\n"
    "target = {'pid': 7, 'ppid': 1, 'role': '\\x1b[31mevil', 'rank': 'x'}\n"
    "print(json.dumps({'schema': 1, 'command': 'stack', 'error': 'boom \\x1b]0;owned\\x07', 'target': target}))\n"
)


def test_what_a_pod_prints_is_bounded_and_escaped(cluster: Cluster) -> None:
    """A pod's client is untrusted: deep JSON, junk and escape sequences never reach the terminal raw."""
    program = "%s -c %s" % (sys.executable, shlex.quote(HOSTILE))
    result = cluster.k8s("-n", "shop", "web-0", "--remote-command", program, "--no-color", "--", "1", "--cmd", "stack")
    assert result.returncode == 1
    assert "\x1b" not in result.stdout + result.stderr
    assert "pod shop/web-0 pid 7" in result.stderr and "boom" in result.stderr  # the error, escaped, with its pod
    assert "evil" not in result.stderr  # a role that is not one of ours is dropped
    assert "Traceback" not in result.stderr


def test_from_an_ephemeral_debug_container(cluster: Cluster) -> None:
    """--debug-image: the client runs beside the app (shared pids, its own /tmp), started once, reused."""
    bare = shutil.which("python3", path="/usr/bin")
    if bare is None:
        pytest.skip("no /usr/bin/python3")
    words = ["-n", "shop", "web-0", "--debug-image", "python:3.12-slim", "--copy", "--remote-command", bare, "--json"]
    command = ["--", "1", "--cmd", "getglobal __main__ STATE -e \"target['role']\""]
    first = cluster.k8s(*words, *command)
    assert first.returncode == 0, (first.stdout, first.stderr)
    [record] = [r for r in checked(first) if "result" in r]
    assert record["result"]["value"]["v"] == "master" and record["target"]["pod"]["name"] == "web-0"
    [debugger] = os.listdir(cluster.env["FAKE_KUBE_STATE"] + ".d")
    assert debugger.startswith("shop_web-0_flight-profiler-")
    with open(os.path.join(cluster.env["FAKE_KUBE_STATE"] + ".d", debugger)) as fh:
        sleeper = json.load(fh)["pid"]
    # the debug container has a /tmp of its own; the client left nothing there
    assert os.stat("/proc/%d/root/tmp" % sleeper).st_dev != os.stat("/proc/%d/root/tmp" % cluster.pid1("web-0")).st_dev
    assert os.listdir("/proc/%d/root/tmp" % sleeper) == []
    again = cluster.k8s(*words, *command)
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert os.listdir(cluster.env["FAKE_KUBE_STATE"] + ".d") == [debugger]  # reused, not a second one
    os.kill(sleeper, signal.SIGKILL)  # an ended debug container cannot be restarted: said in one line
    for _ in range(100):
        if not os.path.exists("/proc/%d" % sleeper):
            break
        time.sleep(0.05)
    ended = cluster.k8s(*words, *command)
    assert ended.returncode == 1
    assert "cannot be restarted" in ended.stdout + ended.stderr and "Traceback" not in ended.stderr


def test_the_archive_runs_as_a_file_too() -> None:
    """The bytes --copy sends are a zipapp: saved, `python3 flight_profiler.pyz` runs it and leaves nothing."""
    from flight_profiler.fleet.zipapp import archive

    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs root and unshare (a /tmp of its own)")
    script = "mount -t tmpfs -o mode=1777 tmpfs /tmp && cat > /tmp/fp.pyz && %s /tmp/fp.pyz ps --json; echo rc=$?; ls -A /tmp"
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script % shlex.quote(sys.executable)]
    env = {"PATH": os.environ["PATH"]}  # no PYTHONPATH: the archive's own package is what runs
    proc = subprocess.run(argv, input=archive(), capture_output=True, env=env, timeout=60, check=False)
    lines = proc.stdout.decode().splitlines()
    assert lines[-2:] == ["rc=0", "fp.pyz"], (lines[-5:], proc.stderr[-2000:])  # nothing else left in /tmp
    assert any(json.loads(line)["result"] for line in lines[:-2]), lines[:-2]
