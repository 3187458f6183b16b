"""Golden text of the renderers, fed with events recorded from the agent halves in this process.

``data/recorded_events.json`` holds what the agent really sent in each
scenario of ``recorded.py`` (normalized); ``data/golden/<scenario>.txt`` is
what the client shows for it. A fresh recording must still match the stored
events, so the fixtures cannot drift away from what the agent sends.
``test_golden_output.py`` has the constructed events in the seeds' shapes.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import pytest
import recorded

from flight_profiler.render.console import make_console

NAMES = sorted(recorded.SCENARIOS)


pytestmark = pytest.mark.usefixtures("utc")  # the shared fixture in conftest.py


def render(spec: Any, events: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    console = make_console(color=False, file=out, width=120)
    for event in events:
        renderable = spec.render(event)
        if renderable is not None:
            console.print(renderable)
    return out.getvalue()


def test_stored_events_match_a_fresh_recording() -> None:
    fresh = {name: recorded.record(name) for name in NAMES}
    if recorded.REGEN:
        os.makedirs(os.path.dirname(recorded.EVENTS), exist_ok=True)
        with open(recorded.EVENTS, "w") as fh:
            json.dump(fresh, fh, indent=1, sort_keys=True)
            fh.write("\n")
    stored = recorded.stored()
    for name in NAMES:
        assert fresh[name] == stored[name], "%s: the agent sends other events now (FP_REGEN_GOLDEN=1)" % name


@pytest.mark.parametrize("name", NAMES)
def test_recorded_events_render_as_the_golden_text(name: str) -> None:
    spec = recorded.SCENARIOS[name][0]
    shown = render(spec, recorded.stored()[name])
    path = os.path.join(recorded.GOLDEN, name + ".txt")
    if recorded.REGEN:
        os.makedirs(recorded.GOLDEN, exist_ok=True)
        with open(path, "w") as fh:
            fh.write(shown)
    with open(path) as fh:
        assert shown == fh.read()
