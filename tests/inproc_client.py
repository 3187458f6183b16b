"""The client run in the test's own process against a real target whose agent already runs.

``support.cli`` starts ``python -m flight_profiler`` for every command: a fresh interpreter that imports the
client each time, about 0.08 s of CPU and 0.2 s of wall time per command on this 2-core host (and 0.2 s more
when coverage measures the child). ``client`` calls the same ``cli.main.main`` here, with the same argument
vector: the same parsing, connection (peer checks both ways), request, rendering and ``--json`` lines, and the
same exit status, for about 3 ms. What only a process of its own proves stays with ``support.cli``: the
attach itself (so ``client`` runs the real CLI whenever the target has no agent yet: the injector and the
privileged helper never run inside the test process), start-up and imports (test_client_imports.py), signals
and exit codes of ``entry()`` (test_cli_main_exits.py, test_shell_survives.py), piped input.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
from collections.abc import Iterator
from typing import NoReturn

from support import CliResult, cli


class _WouldAttach(Exception):
    """The in-process client reached the injector or the helper fork: the real CLI does that instead."""


def client(pid: int, command: str, *options: str, json_output: bool = True, timeout: float = 60.0) -> CliResult:
    """``support.cli(pid, command, *options)``'s result, run in this process when the agent is there.

    Past ``timeout`` the command is interrupted as Ctrl-C would (the client cancels it in the target and
    exits 130), where ``support.cli`` kills its process: the test fails either way, and here nothing is
    left hooked."""
    if _agent_listening(pid):
        try:
            return _in_process(pid, command, *options, json_output=json_output, timeout=timeout)
        except _WouldAttach:
            pass  # the agent went away meanwhile, or the target is another user's
    return cli(pid, command, *options, json_output=json_output)


def _in_process(pid: int, command: str, *options: str, json_output: bool, timeout: float) -> CliResult:
    from flight_profiler.attach import attacher, privsep
    from flight_profiler.cli.main import main

    argv = [str(pid), "--cmd", command, *(["--json"] if json_output else []), *options]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_refused(attacher, "_attach_locked"))
        stack.enter_context(_refused(privsep, "_fork_helper"))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(_interrupted_after(timeout))
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors (the program's options), as the process would exit
            code = exc.code if isinstance(exc.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _interrupted_after(timeout: float) -> Iterator[None]:
    """A KeyboardInterrupt in the main thread (the one running the client) after ``timeout`` seconds."""
    assert threading.current_thread() is threading.main_thread(), "the client handles Ctrl-C in the main thread"
    main = threading.main_thread().ident
    assert main is not None
    # a real SIGINT to that thread, not _thread.interrupt_main: only a signal ends a blocking recv (EINTR)
    timer = threading.Timer(timeout, signal.pthread_kill, (main, signal.SIGINT))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextlib.contextmanager
def _refused(module: object, name: str) -> Iterator[None]:
    """``module.name`` raises _WouldAttach for the length of the block (an injection, a fork: never here)."""

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise _WouldAttach(name)

    saved = getattr(module, name)
    setattr(module, name, refuse)
    try:
        yield
    finally:
        setattr(module, name, saved)


def _agent_listening(pid: int) -> bool:
    from flight_profiler.attach.paths import agent_socket

    try:
        return os.path.exists(agent_socket(pid))
    except Exception:  # not a process we can inspect (gone, not Python): the real CLI says why
        return False
