"""The shell on a group: every line runs on the whole group, or on one member after ``use PID``.

``use PID`` switches to one member (its own console works there), ``use all`` back to the
group, ``targets`` lists the members. Everything else is the single-target shell's.
"""

from __future__ import annotations

from prompt_toolkit import PromptSession

from ..cli.shell import HISTORY, CommandCompleter, private_history, run_console
from ..render.safe import safe_line
from .runner import Fleet, MemberRunner


def run_group_shell(fleet: Fleet) -> int:
    current: MemberRunner | None = None  # None: the whole group
    completer = CommandCompleter(fleet.members[0])
    session: PromptSession[str] = PromptSession(
        history=private_history(HISTORY), completer=completer, complete_while_typing=False
    )
    console = fleet.sink.output.console
    console.print(
        "flight_profiler on %d processes - 'targets' lists them, 'use PID' picks one, 'use all' the group"
        % len(fleet.members)
    )
    while True:
        prompt = "flight_profiler[%s]> " % ("all %d" % len(fleet.members) if current is None else current.pid)
        try:
            line = session.prompt(prompt)
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        words = line.split()
        if words and words[0] in ("quit", "exit"):
            break
        if words and words[0] in ("use", "targets"):
            current = _switch(fleet, words, current)
            completer.runner = current or fleet.members[0]
            continue
        try:
            if words == ["console"] and current is not None:
                run_console(current)
            else:
                fleet.execute(line, None if current is None else [current])
        except KeyboardInterrupt:
            fleet.sink.output.note("interrupted")
    fleet.close()
    return 0


def _switch(fleet: Fleet, words: list[str], current: MemberRunner | None) -> MemberRunner | None:
    console = fleet.sink.output.console
    if words[0] == "targets" or len(words) != 2:
        if words[0] != "targets":
            fleet.sink.output.error(None, "use PID | use all")
        for member in fleet.members:
            mark = "*" if member is current else " "
            console.print("%s %s" % (mark, safe_line(member.target.label())), markup=False)
        return current
    if words[1] == "all":
        return None
    chosen = fleet.member(int(words[1])) if words[1].isdigit() and words[1].isascii() else None
    if chosen is None:
        fleet.sink.output.error(None, "%s is not in the group ('targets' lists it)" % safe_line(words[1]))
        return current
    return chosen
