"""Which processes a group command runs on: ``--tree``, ``--select``, ``-p`` and ``--all``.

Everything comes from ``discovery.processes`` (/proc only, read-only). A target carries what the
merged views and every ``--json`` line need: pid, parent, its role in the selected tree
(master / worker / helper) and its rank for torchrun-style jobs (RANK, else LOCAL_RANK, read
from /proc/<pid>/environ when we may).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ..discovery.processes import Caller, PythonProcess, _environ, describe, link_families, scan
from ..errors import UsageError
from ..render.safe import safe_line

# multiprocessing's own service processes: part of the tree, but not workers of the service
_HELPER_ROLES = ("resource tracker", "forkserver")


@dataclass
class Target:
    pid: int
    ppid: int
    role: str | None  # "master" | "worker" | "helper"; None for a process alone in the group
    rank: int | None
    problem: str | None = None  # why nothing can run there (not Python, gone), reported per command
    pod: tuple[str, str] | None = None  # (namespace, name) when it runs in a Kubernetes pod
    key: int = 0  # unique in the group (pids repeat across pods); the pid on this host
    # what the selection saw: its Python version, and whether attaching would inject our agent (none
    # listened there and it looked attachable): the runner gets injections ready once, before the attaches
    python: tuple[int, int] | None = None
    injects: bool = False

    def __post_init__(self) -> None:
        self.key = self.key or self.pid

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"pid": self.pid, "ppid": self.ppid, "role": self.role, "rank": self.rank}
        if self.pod is not None:
            found["pod"] = {"namespace": self.pod[0], "name": self.pod[1]}
        return found

    def ref(self) -> int | str:
        """How JSON names it: the pid on this host, "namespace/pod:pid" in a pod."""
        return self.pid if self.pod is None else "%s/%s:%d" % (self.pod[0], self.pod[1], self.pid)

    def name(self) -> str:
        """How text names it: "pid 12", "pod shop/web-0 pid 12"."""
        where = "pid %d" % self.pid
        return where if self.pod is None else "pod %s/%s %s" % (self.pod[0], self.pod[1], where)

    def label(self) -> str:
        parts = [self.name()]
        if self.role:
            parts.append(self.role)
        if self.rank is not None:
            parts.append("rank %d" % self.rank)
        return " ".join(parts)


@dataclass
class Selection:
    tree: int | None = None
    pattern: str | None = None
    pids: list[int] | None = None
    everything: bool = False

    def empty(self) -> bool:
        return self.tree is None and self.pattern is None and not self.pids and not self.everything


def parse_pids(text: str) -> list[int]:
    """``-p 12,13 14``: pids separated by commas or spaces; anything else is a usage error."""
    pids = []
    for word in re.split(r"[,\s]+", text.strip()):
        if not word:
            continue
        if not (word.isdigit() and word.isascii()) or int(word) <= 0:  # int() refuses "²", isdigit() does not
            raise UsageError("-p takes pids separated by commas, got %r" % safe_line(word))
        pids.append(int(word))
    if not pids:
        raise UsageError("-p takes pids separated by commas, got nothing")
    return pids


def select(selection: Selection, caller: Caller | None = None) -> list[Target]:
    """The targets, in pid order; a usage error when nothing matches.

    ``--tree`` and ``-p`` describe only their own processes (a full scan reads every process's
    memory map: slow on a busy host); ``--select`` and ``--all`` scan.
    """
    who = caller or Caller.current()
    chosen: dict[int, PythonProcess] = {}
    missing: dict[int, str] = {}
    if selection.tree is not None:
        # the root need not be Python: a container's pid 1 or a service's launcher is often a shell
        # (`k8s ... -- --tree 1` was refused there); then its Python descendants are the group
        tree = [proc for proc in (describe(pid, who) for pid in _descendants(selection.tree)) if proc is not None]
        if not tree:
            raise UsageError(
                "--tree %d: no Python process in that tree (the pid is gone, or neither it nor any process below "
                "it runs Python)" % selection.tree
            )
        chosen.update((proc.pid, proc) for proc in tree)
    if selection.pattern is not None or selection.everything:
        processes = scan(who)
        if selection.pattern is not None:
            chosen.update((proc.pid, proc) for proc in _matching(processes, selection.pattern))
        if selection.everything:
            chosen.update((proc.pid, proc) for proc in processes if proc.attachable)
    for pid in selection.pids or ():
        found = chosen.get(pid) or (describe(pid, who) if pid != os.getpid() else None)
        if pid == os.getpid():
            missing[pid] = "pid %d is this flight_profiler client" % pid
        elif found is None:
            missing[pid] = "pid %d is not a Python process (or is gone)" % pid
        else:
            chosen[pid] = found
    if not chosen and not missing:
        raise UsageError(_nothing(selection))
    targets = _targets(list(chosen.values()))
    targets.extend(Target(pid, -1, None, None, problem) for pid, problem in missing.items())
    return sorted(targets, key=lambda target: target.pid)


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (through non-Python ones too), root first, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            ppid = _ppid(int(name))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        if pid not in found and pid != os.getpid():  # never ourselves (--tree of our own shell)
            found.append(pid)
            todo.extend(sorted(children.get(pid, ())))
    return found


def _ppid(pid: int) -> int | None:
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])  # the name before ")" may hold anything
    except (OSError, IndexError, ValueError):
        return None


def _matching(processes: list[PythonProcess], pattern: str) -> list[PythonProcess]:
    """Attachable processes whose command line contains ``pattern`` (a regular expression)."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise UsageError("--select %r is not a regular expression: %s" % (safe_line(pattern), exc)) from None
    return [proc for proc in processes if proc.attachable and regex.search(proc.cmdline)]


def _targets(processes: list[PythonProcess]) -> list[Target]:
    """Roles are relative to the group: a process whose parent is in it is a worker of that parent."""
    for proc in processes:
        proc.children = []
    link_families(processes)  # children within the group, and multiprocessing's helpers named
    pids = {proc.pid for proc in processes}
    return [
        Target(
            proc.pid,
            proc.ppid,
            _role(proc, pids),
            rank_of(proc.pid),
            python=_version(proc.python),
            injects=proc.attachable and not proc.agent,
        )
        for proc in processes
    ]


def _version(python: str | None) -> tuple[int, int] | None:
    major, _, minor = (python or "").partition(".")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None


def _role(proc: PythonProcess, group: set[int]) -> str | None:
    if proc.role and any(marker in proc.role for marker in _HELPER_ROLES):
        return "helper"
    if proc.ppid in group:
        return "worker"
    if proc.children:
        return "master"
    return None


def rank_of(pid: int) -> int | None:
    """RANK, else LOCAL_RANK, from the process's environment (torchrun and friends set them)."""
    environ = _environ(pid)
    for name in ("RANK", "LOCAL_RANK"):
        value = environ.get(name, "")
        if value.isdigit() and value.isascii() and len(value) < 10:  # the target's text: "²" is a digit to isdigit()
            return int(value)
    return None


def _nothing(selection: Selection) -> str:
    if selection.pattern is not None:
        return "--select %r matches no attachable Python process ('flight_profiler ps' lists them)" % safe_line(
            selection.pattern
        )
    return "no attachable Python process found ('flight_profiler ps' lists them)"
