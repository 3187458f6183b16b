"""The seccomp filters the client runs before an attach (``attach/injector/seccomp``): classic BPF as the
kernel runs it, on programs shaped like systemd's and libseccomp's."""

from __future__ import annotations

import pytest

from flight_profiler.attach.injector import seccomp, x86_64

ALLOW, EPERM, KILL = 0x7FFF0000, 0x00050001, 0x80000000
ARCH = x86_64.AUDIT_ARCH


def _deny(nr: int, action: int) -> seccomp.Program:
    """libseccomp's shape: check the architecture, then the call."""
    return [
        (0x20, 0, 0, 4),  # A = arch
        (0x15, 1, 0, ARCH),  # native? skip the kill
        (0x06, 0, 0, KILL),
        (0x20, 0, 0, 0),  # A = nr
        (0x15, 0, 1, nr),
        (0x06, 0, 0, action),
        (0x06, 0, 0, ALLOW),
    ]


def test_a_call_is_answered_as_the_filter_says() -> None:
    program = _deny(41, KILL)
    assert seccomp.run(program, 41, ARCH, (1, 0x80001, 0)) == KILL
    assert seccomp.run(program, 0, ARCH, ()) == ALLOW
    assert seccomp.run(program, 0, 0x40000003, ()) == KILL  # a 32-bit call: another architecture


def test_an_argument_test_on_mmap_protection() -> None:
    """A W^X filter: mmap with PROT_EXEC is fatal (JSET on the low word of args[2]), other mappings pass."""
    program = [
        (0x20, 0, 0, 0),
        (0x15, 0, 3, 9),  # mmap
        (0x20, 0, 0, 32),  # A = low word of args[2]
        (0x45, 0, 1, 0x4),  # JSET PROT_EXEC
        (0x06, 0, 0, KILL),
        (0x06, 0, 0, ALLOW),
    ]
    assert seccomp.run(program, 9, ARCH, (0, 4096, 0x5, 0x100022)) == KILL
    assert seccomp.run(program, 9, ARCH, (0, 4096, 0x3, 0x22)) == ALLOW


def test_scratch_memory_alu_and_the_index_register() -> None:
    program = [
        (0x20, 0, 0, 0),  # A = nr
        (0x04, 0, 0, 1),  # A += 1
        (0x02, 0, 0, 3),  # M[3] = A
        (0x01, 0, 0, 42),  # X = 42
        (0x60, 0, 0, 3),  # A = M[3]
        (0x1D, 0, 1, 0),  # JEQ X
        (0x06, 0, 0, EPERM),
        (0x16, 0, 0, 0),  # RET A
    ]
    assert seccomp.run(program, 41, ARCH, ()) == EPERM
    assert seccomp.run(program, 7, ARCH, ()) == 8


@pytest.mark.parametrize(
    ("actions", "fatal"),
    [((ALLOW, EPERM), None), ((EPERM, KILL), "kill the process"), ((0x00030000, ALLOW), "send SIGSYS")],
)
def test_the_filter_of_highest_precedence_decides(
    monkeypatch: pytest.MonkeyPatch, actions: tuple[int, int], fatal: str | None
) -> None:
    programs = [_deny(41, action) for action in actions]
    monkeypatch.setattr(seccomp, "filters", lambda pid: programs)
    found = seccomp.fatal_call(1, x86_64.SECCOMP_CALLS, ARCH)
    assert (found[1] if found else None) == fatal
    if found:
        assert found[0] == "socket(AF_UNIX)"


def test_no_filter_or_no_right_to_read_it_refuses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seccomp, "filters", lambda pid: [])
    assert seccomp.fatal_call(1, x86_64.SECCOMP_CALLS, ARCH) is None
