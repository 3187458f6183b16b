"""Request pieces several commands share (both sides): their fields and their defaults.

Each command's ``commands/<cmd>/model.py`` declares its request as a TypedDict built from
these, and its ``DEFAULTS``: the client's parser takes its defaults from them and the
agent falls back on the same values, so a default is written once. The TypedDicts exist
only for the type checker (``TYPE_CHECKING`` is False at run time): the target never
imports ``typing`` for them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Optional, TypedDict

    class TargetRequest(TypedDict):
        """``module [class] method [-nm NAME]``: the function a command instruments."""

        module: str
        cls: Optional[str]
        method: str
        nested: Optional[str]  # -nm: a function defined inside the method

    class RenderOptions(TypedDict):
        """``-x``, ``-v``, ``-r``: how captured values are shown."""

        expand: int  # depth, -1: deepest
        verbose: bool
        raw: bool

    class BudgetOption(TypedDict, total=False):
        """``--budget-ms``: sent only when given; the agent has a default per kind of code."""

        budget_ms: float


# -x 1, no -v, no -r (the agent applies the same when a request lacks them)
RENDER_DEFAULTS: RenderOptions = {"expand": 1, "verbose": False, "raw": False}
