"""A process that runs more than one interpreter (3.14's concurrent.interpreters, mod_wsgi): each has its
own modules, so a hook set in the agent's interpreter never sees the others' calls, and a name loaded
only in another is not found. A watch that stayed empty read as "never called"; now the start event's
note and a failed lookup say how many interpreters run and which one the agent is in.
"""

from __future__ import annotations

import pytest

from interpreters import find_interpreters
from support import cli, served

INTERPRETERS = find_interpreters()
PYTHONS = pytest.mark.parametrize("python", [path for _, path in INTERPRETERS], ids=[name for name, _ in INTERPRETERS])
NOTE = "this process runs 3 interpreters and the agent is in the main one"


@PYTHONS
def test_a_process_with_other_interpreters_is_said_to_run_them(python: str) -> None:
    with served(python, "interpreters_target.py", "2", healthy=True) as target:
        watch = cli(target.pid, "watch __main__ work -n 1")
        assert watch.returncode == 0, watch.stderr
        start = watch.results[0]
        assert start["kind"] == "start" and start["note"].startswith(NOTE), start
        assert [r["kind"] for r in watch.results[1:]] == ["call", "end"]  # the main interpreter's calls

        lookup = cli(target.pid, "getglobal __main__ answer")  # a global of the others' __main__
        assert lookup.returncode != 0
        [error] = lookup.errors
        assert error.startswith("attribute 'answer' not found in __main__") and NOTE in error, error


@pytest.mark.any_interpreter
@PYTHONS
def test_the_interpreters_module_alone_is_not_mentioned(python: str) -> None:
    with served(python, "interpreters_target.py", "0", healthy=True) as target:
        watch = cli(target.pid, "watch __main__ work -n 1")
        assert watch.returncode == 0 and "note" not in watch.results[0], watch.stdout
        lookup = cli(target.pid, "getglobal __main__ answer")
        assert lookup.returncode != 0 and "interpreters" not in lookup.errors[0], lookup.errors
