"""What crosses the wire for ``vmtool`` (both sides): the requests and their defaults."""

from __future__ import annotations

from ...protocol.requests import RENDER_DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import List, Literal, Optional, TypedDict, Union

    from ...protocol.requests import BudgetOption, RenderOptions

    class VmtoolOptions(RenderOptions):
        """The fields with a default (``DEFAULTS``)."""

        limit: int  # -n: getInstances: instances shown, -1: all (referenceAnalyze: REFERENCE_LIMIT)
        depth: int  # --depth: referenceAnalyze: the longest chain searched, in references

    class GetInstancesRequest(RenderOptions, BudgetOption):
        action: Literal["getInstances"]
        limit: int
        module: str
        cls: str
        expr: Optional[str]  # -e over `instances`

    class ReferenceAnalyzeRequest(TypedDict):
        action: Literal["referenceAnalyze"]
        module: str
        cls: str
        limit: int  # -n: instances whose chain is shown, 1..MAX_CHAINS
        depth: int

    class ForceGcRequest(TypedDict):
        action: Literal["forceGc"]

    VmtoolRequest = Union[GetInstancesRequest, ReferenceAnalyzeRequest, ForceGcRequest]

    class ChainRoot(TypedDict, total=False):
        kind: str  # global, module, local, frame, sys.modules, gc.garbage, young, unknown
        name: str  # __main__.CACHE, a local variable's name, <frame>...
        where: str  # local/frame/young: the function and thread, or why
        type: str  # the root object's type

    class ChainStep(TypedDict):
        via: str  # ['key'], [3], .attr, .__dict__, {...}, .keys(); "" when it cannot be read safely
        type: str  # the type of the object this reference reaches

    class Chain(TypedDict):
        object: str  # module.Class at 0xADDRESS
        root: ChainRoot
        steps: List[ChainStep]


DEFAULTS: VmtoolOptions = {"limit": 10, "depth": 100, **RENDER_DEFAULTS}
REFERENCE_LIMIT = 3  # referenceAnalyze without -n: chains shown
MAX_CHAINS = 100  # referenceAnalyze -n: each chain's objects are held until it is shown
MAX_DEPTH = 10000
