"""Real numpy arrays and torch tensors are shown by shape, dtype (and device): read as
attributes, never converted or repr'd. Skipped where no interpreter here has the library."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from interpreters import find_interpreters
from support import RunningTarget, cli, start_target


def _imports(python: str, module: str) -> bool:
    proc = subprocess.run([python, "-W", "ignore", "-c", "import " + module], capture_output=True, check=False)
    return proc.returncode == 0


def _numpy_python() -> str | None:
    return next((python for _, python in find_interpreters() if _imports(python, "numpy")), None)


@pytest.fixture(scope="module")
def numpy_target() -> Iterator[RunningTarget]:
    python = _numpy_python()
    if python is None:
        pytest.skip("no interpreter here has numpy")
    running = start_target(python, "arrays_target.py")
    yield running
    cli(running.pid, "detach")
    running.stop()


@pytest.fixture(scope="module")
def torch_target(torch_python: str) -> Iterator[RunningTarget]:
    running = start_target(torch_python, "arrays_target.py", timeout=120)
    yield running
    cli(running.pid, "detach")
    running.stop()


def value(pid: int, command: str) -> dict[str, object]:
    result = cli(pid, command)
    assert result.returncode == 0 and len(result.results) == 1, result
    return result.results[0]["value"]  # type: ignore[no-any-return]


def test_numpy_arrays_by_shape(numpy_target: RunningTarget) -> None:
    assert value(numpy_target.pid, "getglobal __main__ MATRIX")["r"] == (
        "<numpy.ndarray shape=(1000, 1000) dtype=float32>"
    )
    assert value(numpy_target.pid, "getglobal __main__ STRIDED -v")["r"] == (
        "<numpy.ndarray shape=(500, 334) dtype=float32>"
    )


def test_torch_tensors_by_shape_dtype_and_device(torch_target: RunningTarget) -> None:
    assert value(torch_target.pid, "getglobal __main__ TENSOR")["r"] == (
        "<torch.Tensor shape=(8, 16) dtype=torch.bfloat16 device=cpu>"
    )
    weights = value(torch_target.pid, "getglobal __main__ WEIGHTS -x 3")
    assert weights["items"][0][1]["r"] == (  # type: ignore[index]
        "<torch.nn.parameter.Parameter shape=(4, 2) dtype=torch.float32 device=cpu>"
    )
