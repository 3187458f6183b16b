"""``gilstat``: GIL hold and wait times per thread, through frida hooks on take_gil/drop_gil.

Builds that keep their full symbol table (pyenv's) are measured; stripped ones
(Debian's python3.11, our 3.14 and 3.15) must say plainly why gilstat is unavailable. The
measuring tests skip when frida (an optional extra) is not installed.
"""

from __future__ import annotations

import atexit
import glob
import importlib.util
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from flight_profiler.commands.gilstat import host, probe
from flight_profiler.commands.gilstat.client import SEEDS_COLUMNS
from flight_profiler.errors import CommandError
from interpreters import find_interpreters
from support import RunningTarget, cli, start_target, target_fixture, wait_until

INTERPRETERS = find_interpreters()
STRIPPED = {"deb3.11", "3.14", "3.15"}  # Debian-built: stripped
WITH_SYMBOLS = [entry for entry in INTERPRETERS if entry[0] not in STRIPPED]
WITHOUT_SYMBOLS = [entry for entry in INTERPRETERS if entry[0] in STRIPPED]
HAVE_FRIDA = importlib.util.find_spec("frida") is not None
needs_frida = pytest.mark.skipif(not HAVE_FRIDA, reason="frida is not installed (pip install 'flight_profiler[gil]')")
SLICE_MS = 50.0  # as in tests/targets/prof_gil_target.py


def slices(target: RunningTarget) -> tuple[int, float]:
    result = cli(target.pid, "getglobal __main__ SLICES -r")
    assert result.returncode == 0, "%s%s; %s" % (result.stdout, result.stderr, target.why())
    value = eval(result.results[0]["value"]["r"])  # the target's own count and total of its slices
    return value["count"], value["total"]


class Unhooked:
    """The hooks are gone within a few seconds of the client's exit: frida unmaps its agent just
    after our detach returns (and later still while a call is in flight through our code). False
    says what is left: the functions' first bytes, frida's mappings, and where each thread is (one
    failure in a full run on 3.8 said only "False", and did not recur in 12 runs alone)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.gone = wait_until(lambda: hooks_gone(pid), timeout=15)

    def __bool__(self) -> bool:
        return self.gone

    def __repr__(self) -> str:
        if self.gone:
            return "unhooked"
        return "left in pid %d: %s" % (self.pid, what_is_left(self.pid))


def unhooked(pid: int) -> Unhooked:
    return Unhooked(pid)


def what_is_left(pid: int) -> str:
    try:
        restored = probe.code_restored(pid, probe.find_functions(pid))
        frida = frida_mappings(pid)
        threads = []
        for tid in sorted(os.listdir("/proc/%d/task" % pid)):
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as fh:
                name = fh.read().strip()
            with open("/proc/%d/task/%s/wchan" % (pid, tid)) as fh:
                threads.append("%s %s (%s)" % (tid, name, fh.read().strip()))
    except OSError as exc:
        return "unreadable: %s" % exc
    return "code restored: %s; frida mappings: %s; threads: %s" % (restored, frida[:6], ", ".join(threads))


def hooks_gone(pid: int) -> bool:
    return probe.code_restored(pid, probe.find_functions(pid)) and not frida_mappings(pid)


def frida_mappings(pid: int) -> list[str]:
    """The paths of ``pid``'s mappings of frida's agent (it unmaps them once no call is in flight through it)."""
    with open("/proc/%d/maps" % pid) as fh:
        return [line.split(None, 5)[-1] for line in fh.read().splitlines() if "frida" in line]


def start_gilstat(pid: int, args: str) -> tuple[subprocess.Popen[str], dict]:
    """Run gilstat in the background; return it once it reports that the hooks are in."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flight_profiler", str(pid), "--cmd", "gilstat on %s" % args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.communicate()
    started = json.loads(line)["result"]
    assert started["action"] == "started"
    return proc, started


def finish(proc: subprocess.Popen[str]) -> dict:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    return json.loads(out.splitlines()[-1])["result"]


def interrupt(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C: gilstat says it stopped; or, when the signal lands while a report is being
    printed, the CLI ends with 130 (its generator's cleanup still unhooks)."""
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), (out, err)
    if proc.returncode == 0:
        assert json.loads(out.splitlines()[-1])["result"]["reason"] == "Ctrl-C"
    assert "Traceback" not in err


target = target_fixture("prof_gil_target.py", healthy=True, pythons=WITH_SYMBOLS)


@needs_frida
def test_hold_and_wait_per_thread(target: RunningTarget) -> None:
    count0, total0 = slices(target)
    result = cli(target.pid, "gilstat on 0 30 3 -d 3.2", timeout=90)
    assert target.proc.poll() is None, "%s%s; %s" % (result.stdout, result.stderr, target.why())
    count1, total1 = slices(target)
    assert result.returncode == 0, result.stdout + result.stderr
    events = result.results
    assert [event["action"] for event in events] == ["started", "report", "stopped"], events
    rows = {row["name"]: row for row in events[1]["threads"]}
    holder = rows["gil-holder"]
    measured = (total1 - total0) / (count1 - count0) * 1000  # the holder's own measure, same window
    assert holder["holds"] >= 10
    assert abs(holder["hold_avg_ms"] - measured) <= 0.3 * measured, (holder, measured)
    for name in ("gil-waiter-0", "gil-waiter-1"):
        assert rows[name]["takes"] > 10 and rows[name]["wait_total_ms"] > 0 and rows[name]["wait_avg_ms"] > 1, rows
        assert rows[name]["hold_avg_ms"] < holder["hold_avg_ms"] / 10
    holds = [w for w in events[1]["warnings"] if w["kind"] == "hold"]
    assert holds and all(w["name"] == "gil-holder" and w["ms"] >= 30 for w in holds), events[1]["warnings"]
    assert not any(name.startswith("flight_profiler") for name in rows)  # the agent's threads are left out
    assert events[2]["reason"] == "duration"
    totals = {row["thread_name"]: row for row in events[1]["cumulative"]}  # the seeds' columns, ns since the start
    cumulative = totals["gil-holder"]
    assert cumulative["takecnt"] >= holder["takes"] and cumulative["drogcnt"] >= holder["drops"]
    assert abs(cumulative["holdavg"] / 1e6 - holder["hold_avg_ms"]) <= 0.3 * holder["hold_avg_ms"], (cumulative, holder)
    assert all(
        totals[name]["take_all"] > 0 and totals[name]["takeavg"] > 1e6 for name in ("gil-waiter-0", "gil-waiter-1")
    )
    assert unhooked(target.pid)
    if abs(measured - SLICE_MS) > 0.3 * SLICE_MS:
        pytest.skip("the machine is too loaded: the holder's own slices averaged %.1f ms, not ~50" % measured)
    assert abs(holder["hold_avg_ms"] - SLICE_MS) <= 0.3 * SLICE_MS, holder


@pytest.mark.any_interpreter  # the client's rendering
@needs_frida
def test_text_has_the_seeds_columns(target: RunningTarget) -> None:
    result = cli(target.pid, "gilstat on 0 0 1 -d 1.5", "--no-color", json_output=False, timeout=90)
    assert result.returncode == 0, "%s%s; %s" % (result.stdout, result.stderr, target.why())
    header = next(line for line in result.stdout.splitlines() if line.startswith("thread_name"))
    assert header.split() == ["thread_name", *SEEDS_COLUMNS, "tid"]
    assert any(line.startswith("gil-holder ") for line in result.stdout.splitlines())
    interval = cli(target.pid, "gilstat on 0 0 1 -d 1.5 --per-interval", "--no-color", json_output=False, timeout=90)
    assert any(line.startswith("thread ") and "wait ms (avg)" in line for line in interval.stdout.splitlines())
    assert unhooked(target.pid)


@pytest.mark.parametrize(("name", "python"), WITHOUT_SYMBOLS, ids=[i for i, _ in WITHOUT_SYMBOLS])
def test_stripped_build_says_why_unavailable(name: str, python: str) -> None:
    running = start_target(python, "prof_gil_target.py")
    try:
        result = cli(running.pid, "gilstat on")
        assert result.returncode != 0 and len(result.errors) == 1, result.stdout
        message = result.errors[0]
        assert "gilstat is unavailable" in message and "take_gil" in message and "stripped" in message, message
        assert "Traceback" not in result.stdout + result.stderr
        assert running.healthy()
    finally:
        running.stop()


NEWEST_WITH_SYMBOLS = WITH_SYMBOLS[-1:]
ENDS_WITH_SYMBOLS = WITH_SYMBOLS[:1] + WITH_SYMBOLS[1:][-1:]  # oldest and newest: the take_gil signatures differ


_FRIDA_TEMP: list[str] = []  # this process's own temp directory for frida, once made


def in_process_probe(pid: int) -> probe.Probe:
    """The hooks held by this process (not by a host): frida's helper files go to a directory of this
    process's own, made and set as ``TMPDIR`` around frida's first use here (GLib reads it once) and
    removed when the process exits, as the host does with its own."""
    if not _FRIDA_TEMP:
        _FRIDA_TEMP.append(tempfile.mkdtemp(prefix="flight_profiler-test-frida-"))
        atexit.register(shutil.rmtree, _FRIDA_TEMP[0], True)
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = _FRIDA_TEMP[0]
    try:
        return probe.Probe(probe.import_frida(), pid, probe.find_functions(pid), 0, 0)
    finally:
        if before is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = before


def gilstat_hosts(pid: int) -> list[int]:
    """The pids of the processes holding gilstat's hooks in ``pid`` (commands/gilstat/host.py)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:  # not a process, or gone
            continue
        if host.MARK.encode() in argv and str(pid).encode() in argv:
            found.append(int(entry))
    return found


def host_temps(pid: int) -> list[str]:
    """The temp directories of the hosts holding gilstat's hooks in ``pid`` (one of their arguments)."""
    temps = []
    for host_pid in gilstat_hosts(pid):
        with open("/proc/%d/cmdline" % host_pid, "rb") as fh:
            argv = [arg.decode() for arg in fh.read().split(b"\0")]
        temps += [arg for arg in argv if os.path.isabs(arg) and os.path.basename(arg).startswith(host.TEMP_PREFIX)]
    return temps


@needs_frida
@pytest.mark.parametrize(("name", "python"), NEWEST_WITH_SYMBOLS, ids=[i for i, _ in NEWEST_WITH_SYMBOLS])
def test_frida_files_stay_in_the_hosts_own_directory(name: str, python: str) -> None:
    """frida's helper goes to the host's private temp directory, which goes with the host; a ``frida-*``
    directory in the shared temp directory that appeared meanwhile (another user's, another gilstat's)
    is left alone. (A root client used to remove every one that appeared while it was attached.)"""
    running = start_target(python, "prof_gil_target.py")
    bystander = tempfile.mkdtemp(prefix="frida-bystander-", dir="/tmp")
    os.rmdir(bystander)
    try:
        proc, _ = start_gilstat(running.pid, "0 0 0.5 -d 1")
        temps = host_temps(running.pid)
        assert len(temps) == 1, (temps, gilstat_hosts(running.pid))
        temp = temps[0]
        assert stat.S_IMODE(os.stat(temp).st_mode) == 0o700
        os.mkdir(bystander)  # after frida attached: what the old code took for its own
        assert glob.glob(os.path.join(temp, "frida-*")), os.listdir(temp)  # frida's helper is here
        assert finish(proc)["action"] == "stopped"
        assert wait_until(lambda: not gilstat_hosts(running.pid), timeout=15)
        assert not os.path.exists(temp)
        assert os.path.isdir(bystander)
        assert running.healthy()
    finally:
        shutil.rmtree(bystander, ignore_errors=True)
        running.stop()


@needs_frida
@pytest.mark.parametrize(("name", "python"), NEWEST_WITH_SYMBOLS, ids=[i for i, _ in NEWEST_WITH_SYMBOLS])
def test_every_way_of_stopping_leaves_nothing_hooked(name: str, python: str) -> None:
    running = start_target(python, "prof_gil_target.py")
    temps: list[str] = []  # each host's own temp directory (frida's helper files): gone after each stop
    try:
        # Ctrl-C
        proc, started = start_gilstat(running.pid, "0 0 0.5")
        temps += host_temps(running.pid)
        assert started["hooked"] >= 2 and not hooks_gone(running.pid)
        time.sleep(1)
        interrupt(proc)
        assert unhooked(running.pid)
        # gilstat off, from another client
        proc, _ = start_gilstat(running.pid, "0 0 0.5")
        temps += host_temps(running.pid)
        off = cli(running.pid, "gilstat off")
        assert off.results == [{"action": "off", "stopped": 1, "hooks_removed": True}], off.stdout + off.stderr
        assert finish(proc)["reason"] == "gilstat off or detach"
        # detach, from another client
        proc, _ = start_gilstat(running.pid, "0 0 0.5")
        temps += host_temps(running.pid)
        assert cli(running.pid, "detach").returncode == 0
        assert finish(proc)["reason"] in ("gilstat off or detach", "the agent went away (detach)")
        assert unhooked(running.pid)
        # the client killed: the process that holds the hooks (commands/gilstat/host.py) sees its pipe
        # close, takes them out with the threads stopped, removes frida's helper files and ends
        proc, _ = start_gilstat(running.pid, "0 0 0.5")
        temps += host_temps(running.pid)
        assert len(temps) == 4 and all(os.path.isdir(temp) for temp in temps[-1:]), temps
        proc.kill()
        proc.communicate()
        assert wait_until(lambda: not gilstat_hosts(running.pid), timeout=15)
        assert hooks_gone(running.pid)
        assert [temp for temp in temps if os.path.exists(temp)] == []
        assert running.healthy()
    finally:
        running.stop()


@needs_frida
@pytest.mark.parametrize(("name", "python"), NEWEST_WITH_SYMBOLS, ids=[i for i, _ in NEWEST_WITH_SYMBOLS])
def test_the_first_stop_on_a_process_waits_for_fridas_memory_only(name: str, python: str) -> None:
    """frida's agent loads libraries a Python may never have (libpthread.so.0, librt.so.1, libdl.so.2
    on glibc 2.34+), and they stay: the stop waited for them to be unmapped, so every first gilstat on a
    process ended UNHOOK_WAIT (4 s) late (``-d 1`` stopped after 5 s). Now it has seen all of frida's
    own memory go when it returns, and what it waited for is exactly that."""
    running = start_target(python, "prof_gil_target.py")
    try:
        with open("/proc/%d/maps" % running.pid) as fh:
            before = {line.split(None, 5)[-1] for line in fh.read().splitlines() if "x" in line.split()[1]}
        hooks = in_process_probe(running.pid)
        assert hooks.stop() == 0
        assert hooks.frida_left() == ([], False)  # it returned because frida's memory had gone, not at its deadline
        with open("/proc/%d/maps" % running.pid) as fh:
            loaded = {line.split(None, 5)[-1] for line in fh.read().splitlines() if "x" in line.split()[1]} - before
        assert not [path for path in loaded if "frida" in path or path.startswith("/memfd:")], loaded
        assert running.healthy(), running.why()
    finally:
        running.stop()


@needs_frida
@pytest.mark.parametrize(("name", "python"), ENDS_WITH_SYMBOLS, ids=[i for i, _ in ENDS_WITH_SYMBOLS])
def test_hooks_come_off_while_threads_wait_inside_take_gil(name: str, python: str) -> None:
    """gilstat ends while four threads are blocked inside the hooked take_gil (the main thread holds
    the GIL for 3 s): they must return through code that is still there (frida keeps a listener's
    trampolines, and its agent, while a call is inside them; the client's detach waits for that)."""
    running = start_target(python, "gil_switch_target.py")
    try:
        proc, _ = start_gilstat(running.pid, "0 0 0.5 -d 1")
        running.proc.send_signal(signal.SIGUSR2)  # the hold begins; gilstat's duration ends inside it
        stopped = finish(proc)
        assert stopped["action"] == "stopped", stopped
        assert running.proc.stdout is not None and running.proc.stdout.readline().strip() == "held", running.why()
        assert unhooked(running.pid), running.why()
        time.sleep(0.5)  # the waiters have taken the GIL again, and returned from take_gil
        assert running.proc.poll() is None, running.why()
        assert running.healthy(), running.why()
    finally:
        running.stop()


@needs_frida
@pytest.mark.parametrize(("name", "python"), ENDS_WITH_SYMBOLS, ids=[i for i, _ in ENDS_WITH_SYMBOLS])
def test_hooks_go_in_and_out_while_threads_race_through_them(name: str, python: str) -> None:
    """Sixteen threads hand the GIL around while the hooks go in and come out 150 times. frida writes
    the functions' first bytes and frees trampolines under running threads: before the target's threads
    were stopped around each rewrite, this target died of SIGSEGV in 3 runs of 4 (3.8, 2 cores)."""
    running = start_target(python, "gil_churn_target.py")
    try:
        hooks = in_process_probe(running.pid)
        try:
            assert hooks.hook_pause.threads >= 17, hooks.hook_pause  # the main thread and the sixteen
            listed = seen_inside = 0
            for _ in range(150):
                inside = hooks._patch("unhook")[1]  # the frozen rewrites that gilstat's stop and start do
                listed += len(inside)
                # the calls inside at the unhook: their return addresses are frida's leave trampolines
                seen_inside += len(hooks._still_inside([probe.OpenCall(int(t), int(s, 16)) for t, s in inside]))
                hooks._patch("hook")
                assert running.proc.poll() is None, running.why()
            assert listed > 0 and seen_inside > 0, (listed, seen_inside)
        finally:
            assert hooks.stop() == 0  # each of them left, and the agent unloaded in time
        assert unhooked(running.pid), running.why()
        assert running.healthy(), running.why()
    finally:
        running.stop()


@needs_frida
@pytest.mark.parametrize(("name", "python"), WITH_SYMBOLS[:1], ids=[i for i, _ in WITH_SYMBOLS[:1]])
def test_a_main_thread_that_never_waits_is_not_handed_to_fridas_injector(name: str, python: str) -> None:
    """frida's injector restores only the general registers of the thread it borrows: gilstat waits for
    the main thread to block in a system call, and says why it will not go on when it never does."""
    running = start_target(python, "busy_main_target.py")
    try:
        with pytest.raises(CommandError, match="did not wait in a system call"):
            in_process_probe(running.pid)
        assert hooks_gone(running.pid)  # frida never came in
        assert running.healthy(), running.why()
    finally:
        running.stop()


@needs_frida
@pytest.mark.parametrize(("name", "python"), NEWEST_WITH_SYMBOLS, ids=[i for i, _ in NEWEST_WITH_SYMBOLS])
def test_a_call_stuck_in_take_gil_keeps_fridas_agent_until_it_returns(name: str, python: str) -> None:
    """The hold outlasts the client's wait: gilstat says calls are still inside and exits; frida's agent
    stays until they return, then leaves by itself; the target lives on."""
    running = start_target(python, "gil_switch_target.py", "8")
    try:
        proc, _ = start_gilstat(running.pid, "0 0 0.5 -d 0.5")
        time.sleep(0.2)  # every waiter back in its 5 ms sleep, then into the hooked take_gil
        running.proc.send_signal(signal.SIGUSR2)
        stopped = finish(proc)
        assert stopped.get("still_inside", 0) >= 1, stopped
        assert running.proc.poll() is None and not hooks_gone(running.pid), running.why()  # still held
        assert running.proc.stdout is not None and running.proc.stdout.readline().strip() == "held", running.why()
        assert unhooked(running.pid), running.why()
        assert running.healthy(), running.why()
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("gilstat on 5", "takes: [take_ms hold_ms"),
        ("gilstat on 5 5 0", "interval_s must be"),
        ("gilstat on 5 5 1 0.5", "max_threads must be"),
        ("gilstat on -1 5", "must be 0"),
        ("gilstat off 3", "takes no arguments"),
        ("gilstat maybe", "invalid choice"),
    ],
)
def test_bad_input_is_one_line(command: str, message: str) -> None:
    result = cli(os.getpid(), command)
    assert result.returncode != 0
    assert len(result.errors) == 1 and message in result.errors[0], result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(("name", "python"), NEWEST_WITH_SYMBOLS, ids=[i for i, _ in NEWEST_WITH_SYMBOLS])
def test_without_frida_says_how_to_install_it(name: str, python: str) -> None:
    running = start_target(python, "prof_gil_target.py")
    try:
        code = (
            "import sys; sys.modules['frida'] = None\n"  # as if the extra were not installed
            "from flight_profiler.cli.main import entry\n"
            "sys.argv = ['flight_profiler', %r, '--cmd', 'gilstat on', '--json']\n"
            "entry()\n" % str(running.pid)
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode != 0
        errors = [json.loads(line)["error"] for line in proc.stdout.splitlines() if line.strip()]
        assert errors == [probe.INSTALL_HINT], proc.stdout + proc.stderr
        assert running.healthy()
    finally:
        running.stop()


@pytest.mark.parametrize("command", ["gilstat on", "getglobal os sep"])
def test_an_exited_target_is_said_to_have_exited(command: str) -> None:
    """A zombie has no maps and no executable: the error says it exited, not that it is no CPython."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        assert wait_until(lambda: _state(proc.pid) == "Z", timeout=30)  # exited, not reaped yet
        result = cli(proc.pid, command)
        assert result.returncode != 0 and len(result.errors) == 1, result.stdout + result.stderr
        assert result.errors[0].startswith("pid %d has exited" % proc.pid), result.errors
        assert "Traceback" not in result.stderr
    finally:
        proc.wait()


def _state(pid: int) -> str:
    with open("/proc/%d/stat" % pid) as fh:
        return fh.read().rpartition(")")[2].split()[0]


@needs_frida
@pytest.mark.children_measured  # the process that holds the hooks (host.serve)
@pytest.mark.parametrize(("name", "python"), NEWEST_WITH_SYMBOLS, ids=[i for i, _ in NEWEST_WITH_SYMBOLS])
def test_the_client_in_this_process_measures_renders_and_unhooks(
    name: str, python: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """gilstat's client half (the probe, the hooks' host, the report, both renderings) run in this test's
    own process through the CLI's own Runner, as ``--cmd`` runs it: ``./dev test`` measures it here, where
    the CLI children of the tests above run unmeasured (tests/conftest.py: FP_COVERAGE_PYTHONS)."""
    from flight_profiler.attach.attacher import AttachOptions
    from flight_profiler.cli.output import Output
    from flight_profiler.cli.runner import Runner

    running = start_target(python, "prof_gil_target.py")
    try:
        runner = Runner(running.pid, Output(True, color=False), AttachOptions(timeout=60))
        try:
            assert runner.execute("gilstat on 0 30 1 -d 1.5")
        finally:
            runner.close()
        events = [json.loads(line)["result"] for line in capsys.readouterr().out.splitlines()]
        actions = [event["action"] for event in events]
        assert actions[0] == "started" and actions[-1] == "stopped" and "report" in actions, events
        assert events[0]["hooked"] >= 2 and events[-1]["reason"] == "duration"
        report = events[actions.index("report")]
        assert {"gil-holder", "gil-waiter-0", "gil-waiter-1"} <= {row["name"] for row in report["threads"]}
        assert unhooked(running.pid)
        runner = Runner(running.pid, Output(False, color=False), AttachOptions(timeout=60))
        try:
            assert runner.execute("gilstat on 0 0 1 -d 1.2 --per-interval")
            assert runner.execute("gilstat off")
        finally:
            runner.close()
        text = capsys.readouterr().out
        assert any(line.startswith("thread ") and "wait ms (avg)" in line for line in text.splitlines()), text
        assert unhooked(running.pid)
        assert cli(running.pid, "detach").returncode == 0
        assert running.healthy()
    finally:
        running.stop()
