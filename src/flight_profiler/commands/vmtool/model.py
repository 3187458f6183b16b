"""What crosses the wire for ``vmtool`` (both sides): the requests and their defaults."""

from __future__ import annotations

from ...protocol.requests import RENDER_DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Literal, Optional, TypedDict, Union

    from ...protocol.requests import BudgetOption, RenderOptions

    class VmtoolOptions(RenderOptions):
        """The fields of getInstances with a default (``DEFAULTS``)."""

        limit: int  # -n: instances shown, -1: all

    class GetInstancesRequest(VmtoolOptions, BudgetOption):
        action: Literal["getInstances"]
        module: str
        cls: str
        expr: Optional[str]  # -e over `instances`

    class ForceGcRequest(TypedDict):
        action: Literal["forceGc"]

    VmtoolRequest = Union[GetInstancesRequest, ForceGcRequest]


DEFAULTS: VmtoolOptions = {"limit": 10, **RENDER_DEFAULTS}
