"""What crosses the wire for ``torch`` (both sides): the requests of each action and their defaults."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Literal, TypedDict, Union

    from ...protocol.requests import TargetRequest

    class TorchOptions(TypedDict):
        """The fields with a default (``DEFAULTS``)."""

        wait: float  # --wait, seconds for the call to come; 0: until stopped

    class TorchCallRequest(TargetRequest, TorchOptions):
        action: Literal["profile", "record"]  # torch profile; torch memory -r
        path: str  # absolute: resolved against the client's working directory

    class TorchSnapshotRequest(TypedDict):
        action: Literal["snapshot"]  # torch memory -s
        path: str

    TorchRequest = Union[TorchCallRequest, TorchSnapshotRequest]


DEFAULTS: TorchOptions = {"wait": 0.0}
