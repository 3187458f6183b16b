"""The injector's pure parts: restart encoding, sigframe layout, fpstate validation, phase table."""

from __future__ import annotations

import struct

import pytest

from flight_profiler.attach.injector import ON_CLIENT_DEATH, RECOVERY, TRANSITIONS, Phase, x86_64
from flight_profiler.attach.injector.arch import PythonCalls
from flight_profiler.attach.injector.machine import Machine

MASK = (1 << 64) - 1


def regs(**values: int) -> x86_64.Regs:
    r = x86_64.Regs()
    r.cs, r.ss, r.eflags = 0x33, 0x2B, 0x246
    for name, value in values.items():
        setattr(r, name, value & MASK)
    return r


def snap(r: x86_64.Regs, fp: bytes = b"", xsave: bool = False) -> x86_64.Snapshot:
    return x86_64.Snapshot(r, fp or bytes(512), xsave, 0x1234)


@pytest.mark.parametrize("err", [512, 513, 514])
def test_restartable_syscall_goes_back_to_its_syscall_insn(err: int) -> None:
    out, how = x86_64.resume_regs(regs(orig_rax=7, rax=-err, rip=0x1002, rdi=5))
    assert (how, out.rip, out.rax, out.rdi) == ("restart", 0x1000, 7, 5)


def test_restart_block_nanosleep_sleeps_what_is_left() -> None:
    out, how = x86_64.resume_regs(regs(orig_rax=35, rax=-516, rip=0x1002, rdi=0xA0, rsi=0xB0))
    assert (how, out.rip, out.rax, out.rdi) == ("reissue", 0x1000, 35, 0xB0)


def test_restart_block_clock_nanosleep() -> None:
    relative, _ = x86_64.resume_regs(regs(orig_rax=230, rax=-516, rip=0x1002, rsi=0, rdx=0xA0, r10=0xB0))
    absolute, _ = x86_64.resume_regs(regs(orig_rax=230, rax=-516, rip=0x1002, rsi=1, rdx=0xA0, r10=0))
    assert (relative.rdx, absolute.rdx, absolute.rax) == (0xB0, 0xA0, 230)


def test_completed_syscall_and_user_code_resume_as_they_were() -> None:
    done, how = x86_64.resume_regs(regs(orig_rax=0, rax=12, rip=0x1002))
    assert (how, done.rip, done.rax) == ("completed", 0x1002, 12)
    running, how = x86_64.resume_regs(regs(orig_rax=-1, rax=99, rip=0x1002))
    assert (how, running.rip, running.rax) == ("running", 0x1002, 99)


def test_frame_layout() -> None:
    sp = 0x7FFF_0000_1000
    fp = bytearray(832)  # FXSAVE + xsave header + AVX, as ptrace returns it
    struct.pack_into("<IIQI", fp, 464, 0x46505853, 836, 0x7, 832)
    struct.pack_into("<Q", fp, 512, 0x7)
    s = snap(regs(orig_rax=202, rax=-512, rip=0x4002, rsp=sp, rbx=0x77), bytes(fp), xsave=True)
    frame = x86_64.build_frame(s, 0xDEAD, b"magic123")
    end = frame.addr + len(frame.blob)
    assert frame.addr % 16 == 8 and end <= sp - 128 and frame.stack_top % 16 == 0 and frame.stack_top < frame.addr
    blob = frame.blob
    assert struct.unpack_from("<Q", blob, 0)[0] == 0xDEAD  # pretcode: where ``ret`` goes
    flags, _link, _sp, ss_flags = struct.unpack_from("<QQQi", blob, 8)
    assert flags == 0x7 and ss_flags == 3  # FP_XSTATE|SIGCONTEXT_SS|STRICT_RESTORE_SS, altstack untouched
    mc = 48
    assert struct.unpack_from("<Q", blob, mc + 88)[0] == 0x77  # rbx
    assert struct.unpack_from("<Q", blob, mc + 120)[0] == sp  # rsp
    assert struct.unpack_from("<Q", blob, mc + 128)[0] == 0x4000  # rip: back to the syscall insn
    assert struct.unpack_from("<Q", blob, mc + 104)[0] == 202  # rax = orig_rax
    fpstate = struct.unpack_from("<Q", blob, mc + 184)[0]
    assert fpstate % 64 == 0 and frame.addr + 440 <= fpstate
    assert struct.unpack_from("<Q", blob, 304)[0] == 0x1234  # signal mask
    assert blob[312:320] == b"magic123" and frame.progress == frame.addr + 320
    off = fpstate - frame.addr
    assert struct.unpack_from("<I", blob, off + 832)[0] == 0x46505845  # magic2 right after xstate_size


def test_fp_image_declares_dynamic_features_in_use() -> None:
    fp = bytearray(4096)
    struct.pack_into("<IIQI", fp, 464, 0x46505853, 836, 0x7, 832)
    struct.pack_into("<Q", fp, 512, 0x7 | (1 << 18))  # a dynamically enabled component in use
    img = x86_64.fp_image(snap(regs(), bytes(fp), xsave=True))
    magic1, ext, features, size = struct.unpack_from("<IIQI", img, 464)
    assert (magic1, size, ext, features & (1 << 18)) == (0x46505853, 4096, 4100, 1 << 18) and len(img) == 4100


def test_fxsave_only_image_says_so() -> None:
    img = x86_64.fp_image(snap(regs(), bytes(512), xsave=False))
    assert len(img) == 512 and struct.unpack_from("<I", img, 464)[0] == 0


def test_trampoline_fits_and_exposes_both_entries() -> None:
    frame = x86_64.build_frame(snap(regs(rsp=0x7FFF_0000_1000)), 0xDEAD, b"m" * 8)
    calls = PythonCalls(1, 2, 3, 4)
    blob, entries = x86_64.build_page(0x10000, 4096, b"pass", calls, frame, 0x55, 0xDEAD)
    assert set(entries) == {"gilstate", "pending"} and blob.endswith(b"pass\0")
    assert len(blob) <= x86_64.page_size_for(b"pass")


def test_every_phase_has_recovery_death_story_and_reaches_the_end() -> None:
    assert set(RECOVERY) == set(Phase) == set(ON_CLIENT_DEATH) == set(TRANSITIONS)
    seen, todo = set(), [Phase.PREPARE]
    while todo:
        phase = todo.pop()
        if phase not in seen:
            seen.add(phase)
            todo.extend(TRANSITIONS[phase])
    assert seen == set(Phase)
    for phase in Phase:
        if TRANSITIONS[phase]:
            assert Phase.FAILED in TRANSITIONS[phase]


def test_machine_refuses_undeclared_transitions() -> None:
    machine = Machine()
    machine.enter(Phase.MAP_SEIZED)
    with pytest.raises(AssertionError):
        machine.enter(Phase.RUN_ARMED)


def test_other_machines_are_refused_before_any_ptrace(monkeypatch: pytest.MonkeyPatch) -> None:
    from flight_profiler.attach import ptrace
    from flight_profiler.attach.injector import arch
    from flight_profiler.errors import InjectionError

    assert arch.this_machine() == __import__("platform").machine().lower()  # what it stands in for
    monkeypatch.setattr(arch, "this_machine", lambda: "aarch64")
    with pytest.raises(InjectionError, match="x86-64 only; this machine is aarch64"):
        ptrace.inject(1, "pass")  # pid 1 is never touched: the refusal comes first
