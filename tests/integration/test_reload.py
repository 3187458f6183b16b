"""reload against a real target, on every interpreter found: new behaviour everywhere, clear refusals."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator

import pytest

from inproc_client import client
from instr_helpers import TARGETS, background, evaluate, of_kind, start_instr
from interpreters import find_interpreters
from support import RunningTarget

INTERPRETERS = find_interpreters()

TEMPLATE = '''"""Rewritten by the reload tests."""

SCALE = 10


def version():
    {version}


class Reloadable:
    def value(self, x):
        return x + {step}

    def hello(self):
        {hello}
'''
ORIGINAL = {"version": "return 1", "step": "1", "hello": "return super().__repr__()[:1]"}


@pytest.fixture(scope="module", params=INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTarget]:
    directory = str(tmp_path_factory.mktemp("reload"))
    shutil.copy(os.path.join(TARGETS, "instr_reloadable.py"), directory)
    running = start_instr(request.param[1], directory)
    running.extra["file"] = os.path.join(directory, "instr_reloadable.py")
    yield running
    client(running.pid, "detach")
    assert running.healthy()  # the callers of the reloaded functions never failed
    running.stop()


def write(target: RunningTarget, text: str | None = None, **changes: str) -> None:
    with open(target.extra["file"], "w") as fh:
        fh.write(text if text is not None else TEMPLATE.format(**{**ORIGINAL, **changes}))


def reload(target: RunningTarget, where: str) -> dict:
    result = client(target.pid, "reload instr_reloadable %s" % where)
    assert result.returncode == 0, result.stdout + result.stderr
    return of_kind(result, "reloaded")[0]


def test_every_reference_runs_the_new_code_with_its_line_numbers(target: RunningTarget) -> None:
    write(target, version="raise RuntimeError('v2')", step="100")
    event = reload(target, "version")
    assert event["changed"] and not event["hooked"] and event["line"] == 6
    reload(target, "Reloadable value")
    line = evaluate(
        target.pid,
        "import traceback\n"
        "try:\n    m.FUNCTIONS['version']()\n"
        "except RuntimeError as exc:\n    found = traceback.extract_tb(exc.__traceback__)[-1].lineno\n"
        "found, m.instr_reloadable.Reloadable().value(1), m.FUNCTIONS['version'] is m.instr_reloadable.version",
    )
    assert line == [7, 101, True] or line == (7, 101, True)
    write(target)
    reload(target, "version")
    reload(target, "Reloadable value")
    found = evaluate(target.pid, "found = m.instr_reloadable.version(), m.ERRORS[-1:]\ndel m.ERRORS[:]\nfound")
    assert found == (1, ["RuntimeError('v2')"])  # the target's own caller saw the reloaded function raise


def test_refusals_leave_the_target_unchanged(target: RunningTarget) -> None:
    write(target)
    reload(target, "version")
    before = evaluate(
        target.pid, "id(m.instr_reloadable.version.__code__), id(m.instr_reloadable.Reloadable.hello.__code__)"
    )
    cases = [
        ({"text": "def version(:\n"}, "version", "does not compile: "),
        ({"version": "return 2"}, "nothing", "attribute 'nothing' not found"),
        (
            {"text": TEMPLATE.format(**ORIGINAL).replace("def version():", "def renamed():")},
            "version",
            "is no longer defined in",
        ),
        (
            {"text": TEMPLATE.format(**ORIGINAL).replace("def version():", "def version(extra=1):")},
            "version",
            "its parameters changed (() -> (extra))",
        ),
        (
            {"hello": "return 'no super'"},
            "Reloadable hello",
            "its closure changed shape: it used (__class__), the file's version uses no outer variables",
        ),
        (
            {"text": TEMPLATE.format(**ORIGINAL).replace("def version():", "async def version():")},
            "version",
            "it changed from a function to a coroutine",
        ),
    ]
    for changes, where, message in cases:
        write(target, **changes)
        result = client(target.pid, "reload instr_reloadable %s" % where)
        assert result.returncode != 0 and len(result.errors) == 1, (where, result.stdout)
        assert message in result.errors[0], (message, result.errors)
    after = evaluate(
        target.pid, "id(m.instr_reloadable.version.__code__), id(m.instr_reloadable.Reloadable.hello.__code__)"
    )
    assert after == before
    assert evaluate(target.pid, "m.instr_reloadable.version(), m.instr_reloadable.Reloadable().hello()") == (1, "<")
    write(target)


def test_reload_while_watched_survives_the_watch(target: RunningTarget) -> None:
    write(target)
    reload(target, "version")
    watch = background(target.pid, "watch instr_reloadable version -n 2 -f 'return_obj == 3'")
    write(target, version="return 3")
    assert reload(target, "version")["hooked"] is True
    assert watch.proc.wait(30) == 0  # it saw the new code's results, then ended by itself
    calls = [line["result"] for line in watch.lines() if line["result"].get("kind") == "call"]
    assert [call["values"][-1]["value"]["v"] for call in calls] == [3, 3]
    found = evaluate(
        target.pid,
        "f = m.instr_reloadable.version\n"
        "f(), f.__code__.co_filename == m.instr_reloadable.__file__, "
        "__import__('sys').modules['_flight_profiler.services.hooks'].installed()",
    )
    assert found == (3, True, [])  # the new code stayed when the hook went, not the stale original
    write(target)
    reload(target, "version")
    watch.proc.send_signal(signal.SIGINT)
