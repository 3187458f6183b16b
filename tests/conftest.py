"""Shared fixtures and the suite's plumbing: interpreters found, known defects, grouping for xdist.

The suite runs in two passes (``./dev test`` / ``./dev it``): a parallel one under pytest-xdist
(``--fp-pass parallel -n N --dist loadgroup``) and then a serial one (``--fp-pass serial``, one process)
for the tests that measure the machine or must be alone on it (``SERIAL`` below, or
``@pytest.mark.serial``). A plain ``pytest`` (``--fp-pass all``) runs everything in one process, as before.

In the parallel pass a test that uses a module-scoped fixture (a real target, users, a cluster) is kept
on the worker that holds that fixture: its xdist group is its module plus the parameters of its
module-scoped fixtures (the interpreter, mostly), or its module alone when one of those fixtures is not
parametrized. Tests with function-scoped fixtures only are spread freely.

Tiers: a test marked ``@pytest.mark.any_interpreter`` (or one parameter of it, through
``pytest.param(..., marks=pytest.mark.any_interpreter)``, or a whole module through ``pytestmark``)
proves something that does not depend on the target's interpreter: the client's parsing, rendering and
error messages, option variants of an agent path that an unmarked test proves on every interpreter. It
runs on the oldest and the newest interpreter only (``interpreters.spot_ids``; ``FP_SPOT_PYTHONS=all``
for every one); on the others it is deselected. Unmarked: the attach, cleanup, faults, security, and
at least one test per command on every interpreter.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Generator
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from interpreters import KNOWN_IDS, SPOT_ENV, all_interpreters, find_interpreters, spot_ids

HERE = os.path.dirname(os.path.abspath(__file__))

# Known defects, written down where they fail instead of hidden: each entry is (a substring of the
# test id, the reason). They stay non-strict xfails until their issue is fixed, and the closing note
# of the issue names them.
KNOWN_DEFECTS: list[tuple[str, tuple[str, ...], str]] = []  # none known now

# Tests that must run alone (the serial pass): they load the machine on purpose, measure it, or touch
# what other tests share. Each entry: (a substring of the test id, why). Not here: tests that measure
# their own target's peak RSS or fds (test_capture_bounds.py): no other worker can move those, and in
# the parallel pass they share their module's target instead of starting it again. Nor test_kill_safety's
# random kill sweep (52 s of the serial pass, mostly waiting on its targets): its instants are random
# either way, test_kill_at_every_phase (parallel too) lands in every phase, and its checks wait 10-60 s.
SERIAL = [
    ("test_stress.py::", "30 + 120 attach/detach cycles (FP_STRESS_CYCLES) under CPU load; RSS and fd growth measured"),
    ("test_injector.py::test_repeated_injection_stress", "50 injections; pause times measured"),
    (
        "test_diagnostics.py::test_dashboard_names_the_hog_and_its_function",
        "the hog must get the most CPU of its process in a 0.5 s frame (failed at load 40 beside 3 workers)",
    ),
    (
        "test_diagnostics.py::test_dashboard_times_collections",
        "waits for collections and their pauses in short frames (failed at load 40 beside 3 workers)",
    ),
    ("test_budget_stress.py::", "many CPU-bound application threads with a 0.2 ms switch interval"),
    (
        "test_budget.py::test_console_loop_stops_on_ctrl_c_and_detach_leaves_nothing",
        "the target's loop must take over half a core (it did not at load 15 beside 3 workers)",
    ),
    (
        "test_privsep.py::test_directory_swap_racer_never_touches_another_directory",
        "its racer must get CPU while the attach runs (it swapped 0 times at load 35 beside 3 workers)",
    ),
    # heap walks of the pytest process itself: their time grows with what the process holds. In a parallel
    # worker that had run hundreds of tests (and beside 3 others at load 20-30) each took 20-49 s and three
    # hit the in-process agent's 30 s wait (the full run of 2026-12-02 03:15); alone, about 1 s each
    (
        "tests/unit/test_referrers.py::",
        "walks this process's heap (referenceAnalyze's search), ~1 s alone, 20-49 s in a worker",
    ),
    ("tests/unit/test_heapwalk_slices.py::", "walks this process's heap in slices, ~1 s alone, 18-42 s in a worker"),
    (
        "test_every_command_inproc.py::test_a_command_runs_in_process_and_its_events_render[mem ",
        "a heap walk of this process",
    ),
    (
        "test_every_command_inproc.py::test_a_command_runs_in_process_and_its_events_render[vmtool -a getInstances",
        "a heap walk of this process",
    ),
    (
        "test_every_command_inproc.py::test_a_command_runs_in_process_and_its_events_render[vmtool -a referenceAnalyze",
        "a heap walk of this process",
    ),
    ("test_commands_inproc_options.py::test_mem_summary_orders_and_the_interval_views", "heap walks of this process"),
]

PASSES = ("all", "parallel", "serial")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fp-pass",
        choices=PASSES,
        default="all",
        help="all (default): every test; parallel: all but the serial ones (for xdist); serial: only those",
    )


# The clients the tests run keep the bytecode target interpreters make for them (attach/codecache)
# in a cache directory of this run's own: each run compiles with every interpreter once, then reads
# its entries, as a user's clients do; nothing of an earlier run (or of the user's) is reused.
CACHE_ENV = "FP_TEST_CACHE_DIR"


def pytest_configure(config: pytest.Config) -> None:
    if CACHE_ENV not in os.environ:  # the controller (or a plain run); xdist's workers inherit it
        os.environ[CACHE_ENV] = os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="fp-test-cache-")
        config._fp_cache_dir = os.environ[CACHE_ENV]  # type: ignore[attr-defined]
    config.addinivalue_line(
        "markers",
        "any_interpreter: the test's behaviour does not depend on the target's interpreter; it runs on the "
        "oldest and the newest one only (tests/interpreters.py spot_ids, %s=all for every one)" % SPOT_ENV,
    )
    config.addinivalue_line(
        "markers",
        "children_measured: under ./dev test, the Python children this test starts on the venv are measured "
        "whatever its interpreter (tests/conftest.py: FP_COVERAGE_PYTHONS)",
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    return _preflight(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    """-q hides the report header: the preflight still says which interpreters this run covers."""
    config = session.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if config.get_verbosity() < 0 and reporter is not None and not hasattr(config, "workerinput"):
        for line in _preflight(config):
            reporter.write_line(line)


def _preflight(config: pytest.Config) -> list[str]:
    """Which interpreters the parametrized tests run on, and which are missing."""
    found = dict(all_interpreters())
    selected = [name for name, _ in find_interpreters()]
    lines = ["interpreters: " + (", ".join("%s (%s)" % (name, found[name]) for name in selected) or "none")]
    missing = [name for name in KNOWN_IDS if name not in found]
    left_out = [name for name in found if name not in selected]
    if missing:
        lines.append("interpreters missing on this machine (their tests shrink): " + ", ".join(missing))
    if left_out:
        lines.append("interpreters left out by FLIGHT_PROFILER_TEST_PYTHONS: " + ", ".join(left_out))
    spots = spot_ids()
    if spots != selected:
        lines.append(
            "any_interpreter tests (same behaviour on every interpreter): on %s only (%s=all: on every one)"
            % (", ".join(spots) or "none", SPOT_ENV)
        )
    lines.append("pass: %s" % config.getoption("fp_pass"))
    return lines


# the file part of each SERIAL entry ("tests/unit/test_referrers.py", "test_stress.py")
_SERIAL_FILES = {entry.split("::", 1)[0].lstrip("/") for entry, _ in SERIAL} - {""}


def pytest_ignore_collect(collection_path: pathlib.Path, config: pytest.Config) -> bool | None:
    """The serial pass imports only the modules that hold serial tests: collecting the whole suite to
    deselect all but ~70 of its ~3,500 tests took 7 s (more under coverage), once per run."""
    if config.getoption("fp_pass") != "serial" or not collection_path.name.startswith("test_"):
        return None
    if collection_path.suffix != ".py" or _holds_serial_tests(str(collection_path)):
        return None
    return True


def _holds_serial_tests(path: str) -> bool:
    posix = path.replace(os.sep, "/")
    if any(posix.endswith("/" + name) for name in _SERIAL_FILES):
        return True
    try:
        with open(path, encoding="utf-8") as fh:
            return "mark.serial" in fh.read()
    except OSError:
        return True  # let pytest say what is wrong with it


def _in_pass(item: pytest.Item, wanted: str) -> bool:
    return wanted == "all" or _is_serial(item) == (wanted == "serial")


def _on_a_spot(item: pytest.Item, spots: set[str]) -> bool:
    """False for an ``any_interpreter`` test parametrized over an interpreter outside the spot set."""
    if item.get_closest_marker("any_interpreter") is None:
        return True
    interpreter = _interpreter_of(item)
    return interpreter is None or interpreter in spots


def _is_serial(item: pytest.Item) -> bool:
    return item.get_closest_marker("serial") is not None or any(path in item.nodeid for path, _ in SERIAL)


def _xdist_group(item: pytest.Item) -> str | None:
    """The module plus the parameters of the module-scoped fixtures the test uses, or None (spread freely)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    callspec = getattr(item, "callspec", None)
    module = item.nodeid.split("::", 1)[0]
    params: list[str] = []
    for name in item.fixturenames:  # type: ignore[attr-defined]
        defs = info.name2fixturedefs.get(name)
        # session-scoped fixtures are made once per worker anyway (and guard what they share)
        if not defs or defs[-1].scope not in ("module", "class", "package"):
            continue
        if callspec is None or name not in callspec.params:
            return module  # an unparametrized module fixture: every test of the module shares it
        value = callspec.params[name]
        # an (interpreter id, path) parameter reads as its id
        label = value[0] if isinstance(value, tuple) and value and isinstance(value[0], str) else callspec.indices[name]
        params.append("%s=%s" % (name, label))
    return "%s[%s]" % (module, ",".join(params)) if params else None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Generator[None, None, None]:
    # Outermost: the marks go on before xdist's own hook reads xdist_group, and the split comes
    # after --lf/--ff chose among all the tests (a last failure in the serial pass then leaves the
    # parallel pass empty instead of running everything). The any_interpreter tier is left out here too.
    _mark(items)
    yield
    wanted = config.getoption("fp_pass")
    spots = set(spot_ids())
    keep = [item for item in items if _in_pass(item, wanted) and _on_a_spot(item, spots)]
    if len(keep) != len(items):
        kept = {id(item) for item in keep}
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
        items[:] = keep
    _write_groups(config, items)


def _mark(items: list[pytest.Item]) -> None:
    for item in items:
        for path, markers, reason in KNOWN_DEFECTS:
            if path in item.nodeid and any(marker in item.nodeid for marker in markers):
                item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
        if "torch_python" in getattr(item, "fixturenames", ()):
            # whichever test asks first pays for making the torch venv
            item.add_marker(pytest.mark.timeout(TORCH_SETUP_LIMIT + 120))
        if _is_serial(item):
            continue
        group = _xdist_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


# ------------------------------------------------------------------ xdist: one worker per group
# pytest-xdist's own loadgroup never grouped a test here: its workers append the group to the node id
# (``item._nodeid``), which pytest 9 no longer reads (node ids live in ``item._id``), and its scheduler
# takes a group name that ends in "]" (ours: "module[target=3.8]") for a test parameter. Every test was
# its own unit, spread over the workers in turn, so each module's target was started (and attached)
# on up to all four workers, and the skill examples replayed a skill's earlier examples on each.
# Here each worker writes the group of every collected test (by node id) to a file, and the
# controller's scheduler reads one of them: a group goes to one worker, as one unit, largest first
# (xdist's --loadscope-reorder); a test with no group is a unit of its own.
GROUPS_KEY = "fp_xdist_groups"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Controller: every worker gets the directory its groups file goes to."""
    config = node.config
    if not hasattr(config, "_fp_groups_dir"):
        config._fp_groups_dir = tempfile.mkdtemp(prefix="fp-xdist-groups-")
    node.workerinput[GROUPS_KEY] = config._fp_groups_dir


def pytest_unconfigure(config: pytest.Config) -> None:
    for name in ("_fp_groups_dir", "_fp_cache_dir"):
        directory = getattr(config, name, None)
        if directory:
            shutil.rmtree(directory, ignore_errors=True)


def _write_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Worker: node id -> group of the tests it collected (the same list on every worker)."""
    workerinput = getattr(config, "workerinput", None)
    if not workerinput or GROUPS_KEY not in workerinput:
        return
    groups = {}
    for item in items:
        marker = item.get_closest_marker("xdist_group")
        if marker is not None and marker.args:
            groups[item.nodeid] = str(marker.args[0])
    path = os.path.join(workerinput[GROUPS_KEY], "%s.json" % workerinput["workerid"])
    with open(path + ".tmp", "w") as fh:
        json.dump(groups, fh)
    os.replace(path + ".tmp", path)  # the controller reads whole files only


def _read_groups(directory: str) -> dict[str, str]:
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path) as fh:
            found: dict[str, str] = json.load(fh)
            return found
    return {}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """LoadScopeScheduling whose scope is the test's group, read from the workers' file."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            # first called once every worker has reported its collection, so its file is written
            if self.groups is None:
                directory = getattr(config, "_fp_groups_dir", None)
                self.groups = _read_groups(directory) if directory else {}
            return "@group " + self.groups[nodeid] if nodeid in self.groups else nodeid

    return GroupScheduling(config, log)


# ------------------------------------------------------------------ coverage of the suite's children

# ./dev test measures every Python child on the venv (coverage's patch = subprocess: COVERAGE_PROCESS_CONFIG).
# Starting coverage costs each child ~0.1 s of CPU (importing coverage is 70 ms of it), and a test parametrized
# over interpreters starts its CLI children once per interpreter: their children run unmeasured, unless their
# interpreter id is in FP_COVERAGE_PYTHONS (comma-separated; "all" for every one) or the test is marked
# children_measured. Tests of no interpreter, and an any_interpreter test on the newest of the tier's, are
# measured. What only those children reached is measured in process instead (the client through its own
# Runner, renderers with recorded events). Measuring 3.12's children too (the default until 2026-12-04) cost
# the full run 1 min 40 s (14:47 against 13:07) for 1.2 points of coverage, most of it gilstat's client and
# host, now measured by test_gilstat.py's in-process test.
COVERAGE_PYTHONS = os.environ.get("FP_COVERAGE_PYTHONS", "none")


def _interpreter_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    for value in callspec.params.values() if callspec is not None else ():
        if isinstance(value, tuple) and value and isinstance(value[0], str):
            value = value[0]  # an (interpreter id, path) parameter
        if isinstance(value, str) and value in KNOWN_IDS:
            return value
    return None


@pytest.fixture(autouse=True)
def _children_measured_for_some_interpreters(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if "COVERAGE_PROCESS_CONFIG" not in os.environ or COVERAGE_PYTHONS == "all":
        return
    interpreter = _interpreter_of(request.node)
    if interpreter is None or interpreter in COVERAGE_PYTHONS.split(","):
        return
    if request.node.get_closest_marker("children_measured") is not None:
        return
    spots = spot_ids()
    if request.node.get_closest_marker("any_interpreter") is not None and spots and interpreter == spots[-1]:
        return  # the tier may not run on COVERAGE_PYTHONS' ids: its newest interpreter is measured instead
    monkeypatch.delenv("COVERAGE_PROCESS_CONFIG")  # this test's children run unmeasured


# ------------------------------------------------------------------ shared fixtures

TORCH_SETUP = os.path.join(HERE, "targets", "ensure_torch_env.sh")
TORCH_PYTHON = os.path.join(os.path.dirname(HERE), "bench", ".venvs", "torch311", "bin", "python")
TORCH_SETUP_LIMIT = 180.0


@pytest.fixture(scope="session")
def torch_python() -> str:
    """bench/.venvs/torch311's python (made on first use by ensure_torch_env.sh, 25-45 s), or a skip.

    The script takes a lock, so workers running side by side make the venv once.
    """
    base = dict(all_interpreters()).get("3.11")
    if base is None:
        pytest.skip("no pyenv Python 3.11 to make the torch venv with")
    try:
        proc = subprocess.run(
            ["bash", TORCH_SETUP, base], capture_output=True, text=True, timeout=TORCH_SETUP_LIMIT, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.skip("installing torch took over %.0f s" % TORCH_SETUP_LIMIT)
    if proc.returncode != 0:
        pytest.skip("cannot make the torch venv: %s" % (proc.stderr.strip().splitlines() or ["?"])[-1])
    return TORCH_PYTHON


# ------------------------------------------------------------------ where the suite's CPU goes (opt-in)

# FP_TEST_CPU_LOG=DIR: each process of the run appends, per test phase, one JSON line to DIR/<worker>.jsonl:
# its wall span and the CPU time of the process itself and of the children it reaped meanwhile (the CLI
# runs, the targets: a module's target is reaped at the module's last teardown, so read it by module).
# The parallel pass is CPU-bound on 2 cores (issue 11): its wall time follows the CPU the tests spend,
# not the time they wait. bench/test_cpu.py sums the lines. Nothing is written without the variable.
CPU_LOG = os.environ.get("FP_TEST_CPU_LOG")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, object]:
    if not CPU_LOG:
        return (yield)
    import time

    start, wall = os.times(), time.time()
    try:
        return (yield)
    finally:
        end = os.times()
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        line = {
            "id": item.nodeid,
            "worker": worker,
            "start": wall,
            "wall": time.time() - wall,
            "self": end.user + end.system - start.user - start.system,
            "children": end.children_user + end.children_system - start.children_user - start.children_system,
        }
        os.makedirs(CPU_LOG, exist_ok=True)
        with open(os.path.join(CPU_LOG, "%s.jsonl" % worker), "a") as fh:
            fh.write(json.dumps(line) + "\n")
