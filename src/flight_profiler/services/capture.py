"""Turn live objects into a JSON tree the client renders (runs in the target).

Every value a command shows goes through ``capture``: depth-limited (``-x``),
item-limited unless verbose (``-v``), strings cut to head and tail, cycles and
failing ``__repr__``/``__getattr__`` contained. The tree is plain JSON so the
client can print it as text or pass it on as ``--json``.

Node shapes (``t`` is always the type name):
  {"t", "v"}                       scalar (None, bool, int, float, str) - "v" is the value
  {"t", "r"}                       object shown by its (possibly cut) repr
  {"t", "kind": "list"|"tuple"|"set"|"dict", "len", "items", "more"}
  {"t", "kind": "object", "attrs": {name: node}, "more"}
  plus "cut": [head_len, total_len] on cut strings/reprs, "cycle": true, "error": text
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


MAX_DEPTH = 8  # what -x -1 ("infinite") means: a hard stop for huge graphs
STR_LIMIT = 256
STR_LIMIT_VERBOSE = 8192
ITEM_LIMIT = 20
ITEM_LIMIT_VERBOSE = 2000
_SCALARS = (bool, int, float, type(None))


class CaptureOptions:
    def __init__(self, expand: int = 1, verbose: bool = False, raw: bool = False) -> None:
        self.depth = MAX_DEPTH if expand < 0 else min(expand, MAX_DEPTH)
        self.raw = raw
        self.str_limit = STR_LIMIT_VERBOSE if verbose else STR_LIMIT
        self.item_limit = ITEM_LIMIT_VERBOSE if verbose else ITEM_LIMIT

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> CaptureOptions:
        return cls(
            expand=int(request.get("expand", 1)),
            verbose=bool(request.get("verbose", False)),
            raw=bool(request.get("raw", False)),
        )


def capture(obj: Any, options: CaptureOptions) -> dict[str, Any]:
    """Return the JSON tree of ``obj``."""
    if options.raw:
        return _repr_node(obj, options)
    return _capture(obj, options, options.depth, set())


def _capture(obj: Any, options: CaptureOptions, depth: int, seen: set[int]) -> dict[str, Any]:
    if isinstance(obj, _SCALARS):
        return _scalar(obj)
    if isinstance(obj, str):
        return _string(obj, options.str_limit)
    if isinstance(obj, (bytes, bytearray)) or depth <= 0:
        return _repr_node(obj, options)
    if id(obj) in seen:
        return {"t": _type_name(obj), "cycle": True}
    seen.add(id(obj))
    try:
        return _container(obj, options, depth, seen)
    finally:
        seen.discard(id(obj))


def _container(obj: Any, options: CaptureOptions, depth: int, seen: set[int]) -> dict[str, Any]:
    kind = _kind(obj)
    if kind == "dict":
        return _mapping(obj, options, depth, seen)
    if kind in ("list", "tuple", "set"):
        return _sequence(obj, kind, options, depth, seen)
    attrs = _attributes(obj)
    if attrs is None:
        return _repr_node(obj, options)
    return _object(obj, attrs, options, depth, seen)


def _kind(obj: Any) -> str:
    if isinstance(obj, dict):
        return "dict"
    if isinstance(obj, list):
        return "list"
    if isinstance(obj, tuple):
        return "tuple"
    if isinstance(obj, (set, frozenset)):
        return "set"
    return "object"


def _mapping(obj: Any, options: CaptureOptions, depth: int, seen: set[int]) -> dict[str, Any]:
    items = []
    limit = options.item_limit
    for index, (key, value) in enumerate(list(obj.items())):
        if index >= limit:
            break
        items.append([_capture(key, options, depth - 1, seen), _capture(value, options, depth - 1, seen)])
    return {"t": _type_name(obj), "kind": "dict", "len": len(obj), "items": items, "more": max(0, len(obj) - limit)}


def _sequence(obj: Any, kind: str, options: CaptureOptions, depth: int, seen: set[int]) -> dict[str, Any]:
    limit = options.item_limit
    values = list(obj) if kind == "set" else obj
    items = [_capture(value, options, depth - 1, seen) for value in values[:limit]]
    return {"t": _type_name(obj), "kind": kind, "len": len(obj), "items": items, "more": max(0, len(obj) - limit)}


def _object(obj: Any, attrs: list[str], options: CaptureOptions, depth: int, seen: set[int]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for name in attrs[: options.item_limit]:
        try:
            value = getattr(obj, name)
        except Exception as exc:  # noqa: BLE001 - a failing property is shown, not raised
            shown[name] = {"t": "error", "error": _describe(exc)}
            continue
        shown[name] = _capture(value, options, depth - 1, seen)
    return {"t": _type_name(obj), "kind": "object", "attrs": shown, "more": max(0, len(attrs) - options.item_limit)}


def _attributes(obj: Any) -> list[str] | None:
    """Instance attributes worth expanding, or None for objects best shown by repr."""
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "__dict__")):
        return None
    names: list[str] = []
    try:
        instance_dict = object.__getattribute__(obj, "__dict__")
    except Exception:  # noqa: BLE001 - no __dict__ or a hostile __getattribute__
        instance_dict = None
    if isinstance(instance_dict, dict):
        names.extend(str(key) for key in instance_dict)
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend(slot for slot in ([slots] if isinstance(slots, str) else slots) if slot not in names)
    names = [name for name in names if name not in ("__dict__", "__weakref__")]
    if not names and getattr(type(obj), "__repr__", None) is not object.__repr__:
        return None  # objects with their own repr and no state: the repr says more
    return names


def _scalar(obj: Any) -> dict[str, Any]:
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return {"t": "float", "r": repr(obj)}
    if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) >= 2**53:
        return {"t": _type_name(obj), "r": repr(obj)}  # JSON readers lose precision past 2**53
    return {"t": _type_name(obj), "v": obj}


def _string(text: str, limit: int) -> dict[str, Any]:
    node: dict[str, Any] = {"t": _type_name(text), "v": _cut(text, limit)}
    if len(text) > limit:
        node["cut"] = [limit, len(text)]
    return node


def _repr_node(obj: Any, options: CaptureOptions) -> dict[str, Any]:
    try:
        text = repr(obj)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ is shown, not raised
        return {"t": _type_name(obj), "error": "repr failed: %s" % _describe(exc)}
    if not isinstance(text, str):
        text = "<invalid repr>"
    node: dict[str, Any] = {"t": _type_name(obj), "r": _cut(text, options.str_limit)}
    if len(text) > options.str_limit:
        node["cut"] = [options.str_limit, len(text)]
    return node


def _cut(text: str, limit: int) -> str:
    """Keep the head and the tail: the end of a long message is often the useful part."""
    if len(text) <= limit:
        return text
    head = limit * 3 // 4
    tail = limit - head
    return "%s ... %s" % (text[:head], text[-tail:])


def _type_name(obj: Any) -> str:
    klass = type(obj)
    module = getattr(klass, "__module__", "")
    name = getattr(klass, "__qualname__", klass.__name__)
    return name if module in ("builtins", None, "") else "%s.%s" % (module, name)


def _describe(exc: BaseException) -> str:
    try:
        return "%s: %s" % (type(exc).__name__, exc)
    except Exception:  # noqa: BLE001 - even str(exc) can fail
        return type(exc).__name__
