"""What a command's parser refuses, as the shell and ``--cmd`` would say it (tests/unit)."""

from __future__ import annotations

import pytest

from flight_profiler.cli import registry
from flight_profiler.errors import UsageError


def parse_error(line: str) -> str:
    """The one-line error the command's own parser gives for ``line``."""
    words = line.split()
    spec = registry.get(words[0])
    assert spec is not None
    with pytest.raises(UsageError) as caught:
        spec.parse(words[1:])
    error = str(caught.value)
    assert "\n" not in error  # one line, whatever the mistake
    return error
