"""``torch`` in the target, in this process, against a stand-in for the program's torch.

The agent half never imports torch: it uses ``sys.modules["torch"]``. A small module with torch's
names (profiler, cuda.memory) lets the real session, hooks and one-call probe run here: what the
command hooks, when it starts and stops the profiler or the allocation history, what it writes, and
that the program's call is never disturbed by our failures. The real torch is exercised by
tests/integration/test_torch.py where torch is installed.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import hook_shapes as S
import pytest
from agent_harness import InProcessAgent

from flight_profiler.commands.torch.client import SPEC as TORCH

if "torch" in sys.modules:  # a real torch loaded in this process: the stand-in would hide it
    pytest.skip("torch is loaded in this process", allow_module_level=True)


class FakeProfile:
    """``torch.profiler.profile``: records its life and writes a small Chrome trace."""

    log: list[str] = []
    fail_start = False

    def __init__(self, activities: list[str], record_shapes: bool) -> None:
        self.activities = activities
        self.log.append("new %s shapes=%s" % ("+".join(activities), record_shapes))

    def start(self) -> None:
        if FakeProfile.fail_start:
            raise RuntimeError("profiler busy")
        self.log.append("start on %s" % threading.current_thread().name)

    def stop(self) -> None:
        self.log.append("stop on %s" % threading.current_thread().name)

    def export_chrome_trace(self, path: str) -> None:
        with open(path, "w") as fh:
            json.dump({"traceEvents": [], "activities": self.activities}, fh)


class FakeMemory:
    """``torch.cuda.memory`` of a torch without ``_dump_snapshot`` (the agent pickles ``_snapshot()``)."""

    def __init__(self, recording: bool = False, old_signature: bool = False) -> None:
        self.history: list[Any] = []
        self.recording = recording
        self.old_signature = old_signature

    def _snapshot(self) -> dict[str, Any]:
        return {"segments": [1, 2], "device_traces": [["alloc"]] if self.recording else []}

    def _record_memory_history(self, *args: Any, **kwargs: Any) -> None:
        if self.old_signature and "enabled" in kwargs:
            raise TypeError("unexpected keyword argument 'enabled'")
        self.history.append((args, kwargs))
        self.recording = bool(kwargs.get("enabled", args[0] if args else None))


class DumpingMemory(FakeMemory):
    """A newer torch: it writes the snapshot file itself."""

    def _dump_snapshot(self, path: str) -> None:
        with open(path, "wb") as fh:
            pickle.dump({"dumped": True}, fh)


def _fake_torch(cuda: bool, memory: FakeMemory | None = None) -> types.ModuleType:
    torch = types.ModuleType("torch")
    profiler = types.SimpleNamespace(
        ProfilerActivity=types.SimpleNamespace(CPU="CPU", CUDA="CUDA"), profile=FakeProfile
    )
    torch.profiler = profiler  # type: ignore[attr-defined]
    torch.version = types.SimpleNamespace(cuda="12.1" if cuda else None)  # type: ignore[attr-defined]
    torch.cuda = types.SimpleNamespace(is_available=lambda: cuda, memory=memory or FakeMemory())  # type: ignore[attr-defined]
    return torch


@pytest.fixture
def agent() -> Iterator[InProcessAgent]:
    agent = InProcessAgent()
    yield agent
    agent.close()


@pytest.fixture(autouse=True)
def fresh_log() -> Iterator[None]:
    FakeProfile.log = []
    FakeProfile.fail_start = False
    yield
    sys.modules.pop("torch", None)


def _install(monkeypatch: pytest.MonkeyPatch, torch: types.ModuleType) -> None:
    monkeypatch.setitem(sys.modules, "torch", torch)


def _waiting(agent: InProcessAgent, job: int) -> dict[str, Any]:
    while True:
        for msg in agent.inbox[job]:
            if msg["type"] == "end":
                raise AssertionError(msg)
            if msg["data"].get("action") == "waiting":
                return msg["data"]
        agent._pump()


def test_profile_measures_exactly_the_next_call_on_its_thread(
    agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    _install(monkeypatch, _fake_torch(cuda=True))
    path = str(tmp_path / "trace.json")
    job = agent.start("torch", TORCH.parse(["profile", "hook_shapes", "plain", "-f", path]))
    waiting = _waiting(agent, job)
    assert "profiling the next call of hook_shapes.plain (cpu+cuda)" in waiting["doing"]
    worker = threading.Thread(target=lambda: S.plain(1), name="app-worker")
    worker.start()
    worker.join()
    assert S.plain(2) == 4  # a later call runs untouched
    events, end = agent.finish(job)
    assert end["status"] == "ok", end
    done = events[-1]
    assert done["action"] == "profile" and done["activities"] == ["cpu", "cuda"] and done["raised"] is None
    assert done["bytes"] == os.path.getsize(path) > 0
    with open(path) as fh:
        assert json.load(fh)["activities"] == ["CPU", "CUDA"]
    assert FakeProfile.log == ["new CPU+CUDA shapes=True", "start on app-worker", "stop on app-worker"]
    text = _text(events)
    assert "profiled one call of hook_shapes.plain (cpu+cuda)" in text and "ui.perfetto.dev" in text


def test_profile_says_which_call_raised_and_the_program_still_sees_its_exception(
    agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    _install(monkeypatch, _fake_torch(cuda=False))
    job = agent.start("torch", TORCH.parse(["profile", "hook_shapes", "raises", "-f", str(tmp_path / "t.json")]))
    assert "(cpu)" in _waiting(agent, job)["doing"]
    with pytest.raises(ValueError, match="boom"):
        S.raises("boom")
    events, end = agent.finish(job)
    assert end["status"] == "ok", end
    assert events[-1]["raised"] == "ValueError"
    assert ", raised ValueError" in _text(events)


def test_a_profiler_that_cannot_start_fails_the_command_not_the_call(
    agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    _install(monkeypatch, _fake_torch(cuda=False))
    FakeProfile.fail_start = True
    job = agent.start("torch", TORCH.parse(["profile", "hook_shapes", "plain", "-f", str(tmp_path / "t.json")]))
    _waiting(agent, job)
    assert S.plain(5) == 7
    _, end = agent.finish(job)
    assert end["status"] == "error"
    assert "could not start: RuntimeError: profiler busy" in end["error"]
    assert not (tmp_path / "t.json").exists()


def test_no_call_within_wait_is_an_error_and_nothing_stays_hooked(
    agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    _install(monkeypatch, _fake_torch(cuda=False))
    request = TORCH.parse(["profile", "hook_shapes", "plain", "-f", str(tmp_path / "t.json"), "--wait", "0.3"])
    _, end = agent.run("torch", request)
    assert end["status"] == "error"
    assert "was not called within 0.3 s; nothing was recorded" in end["error"]


def test_cancel_before_any_call_unhooks_and_writes_nothing(
    agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    _install(monkeypatch, _fake_torch(cuda=False))
    job = agent.start("torch", TORCH.parse(["profile", "hook_shapes", "plain", "-f", str(tmp_path / "t.json")]))
    _waiting(agent, job)
    agent.cancel(job)
    events, end = agent.finish(job)
    assert end["status"] in ("cancelled", "ok"), end
    assert [event["action"] for event in events] == ["waiting"]
    assert FakeProfile.log == []
    assert not (tmp_path / "t.json").exists()


def test_memory_snapshot_needs_cuda_and_says_why(
    agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    _install(monkeypatch, _fake_torch(cuda=False))
    _, end = agent.run("torch", TORCH.parse(["memory", "-s", "-f", str(tmp_path / "s.pickle")]))
    assert end["status"] == "error"
    assert "torch.cuda.is_available() is False in the target (a CPU-only build)" in end["error"]


@pytest.mark.parametrize("has_dump", [True, False])
def test_memory_snapshot_is_written_by_torch_or_pickled(
    agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, has_dump: bool
) -> None:
    memory = DumpingMemory() if has_dump else FakeMemory()
    _install(monkeypatch, _fake_torch(cuda=True, memory=memory))
    path = str(tmp_path / "s.pickle")
    events, end = agent.run("torch", TORCH.parse(["memory", "-s", "-f", path]))
    assert end["status"] == "ok", end
    with open(path, "rb") as fh:
        stored = pickle.load(fh)  # the test's own file
    assert stored == ({"dumped": True} if has_dump else {"segments": [1, 2], "device_traces": []})
    assert events[-1] == {"action": "snapshot", "path": path, "bytes": os.path.getsize(path)}
    assert "CUDA memory snapshot" in _text(events)


@pytest.mark.parametrize(("already", "old_signature"), [(False, False), (True, False), (False, True)])
def test_memory_record_turns_history_on_for_one_call_only(
    agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, already: bool, old_signature: bool
) -> None:
    memory = FakeMemory(recording=already, old_signature=old_signature)
    _install(monkeypatch, _fake_torch(cuda=True, memory=memory))
    path = str(tmp_path / "r.pickle")
    job = agent.start("torch", TORCH.parse(["memory", "-r", "hook_shapes", "plain", "-f", path]))
    _waiting(agent, job)
    S.plain(1)
    events, end = agent.finish(job)
    assert end["status"] == "ok", end
    if already:  # the program's own recording is left as it was
        assert memory.history == [] and memory.recording
    elif old_signature:
        assert memory.history == [
            ((True,), {"trace_alloc_max_entries": 100000}),
            ((False,), {"trace_alloc_max_entries": 100000}),
        ]
    else:
        assert [kwargs["enabled"] for _, kwargs in memory.history] == ["all", None]
        assert not memory.recording
    assert events[-1]["action"] == "record" and events[-1]["bytes"] == os.path.getsize(path)
    assert "recorded CUDA allocations of one call of hook_shapes.plain" in _text(events)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"action": "nope"}, "unknown torch action"),
        ({"action": "snapshot", "path": "relative.pickle"}, "must be absolute"),
        ({"action": "snapshot", "path": "/nonexistent-fp-dir/s.pickle"}, "directory does not exist"),
    ],
)
def test_bad_requests_are_refused_before_anything_runs(
    agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch, request_: dict[str, Any], message: str
) -> None:
    _install(monkeypatch, _fake_torch(cuda=True))
    _, end = agent.run("torch", request_)
    assert end["status"] == "error" and message in end["error"], end


def _text(events: list[dict[str, Any]]) -> str:
    import io

    from flight_profiler.render.console import make_console

    out = io.StringIO()
    console = make_console(color=False, file=out, width=200)
    for event in events:
        console.print(TORCH.render(event))
    return out.getvalue()
