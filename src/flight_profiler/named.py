"""``typing.NamedTuple``'s class syntax without importing ``typing`` (client side).

``typing`` costs every ``--cmd`` ~3 ms of start-up (issue 14: a light client), and the
client's named tuples were its only run-time use. Modules import this under
``TYPE_CHECKING = False`` so that mypy still sees ``typing.NamedTuple``::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from ..named import NamedTuple

The class it makes is what ``typing.NamedTuple`` makes: ``collections.namedtuple``
of the annotated fields, in their order, the assigned ones as defaults, then the
class body's other names (methods, properties, the docstring) set on it.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

# called with names known only at run time: mypy checks its literal uses only (it sees typing's class)
_namedtuple: Callable[..., type] = namedtuple

# names a class body may not set, as typing refuses them: they would break the tuple
_PROHIBITED = frozenset(
    ("__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults", "_make", "_replace", "_asdict")
)
_KEPT = frozenset(("__module__", "__name__", "__annotations__"))  # namedtuple's own values stand


class _NamedTupleMeta(type):
    def __new__(cls, typename: str, bases: tuple[type, ...], ns: dict[str, object]) -> type:
        if not bases:  # NamedTuple itself
            return super().__new__(cls, typename, bases, ns)
        if bases != (NamedTuple,):
            raise TypeError("a named tuple derives from NamedTuple alone")
        annotations = dict(ns.get("__annotations__", {}))  # type: ignore[call-overload]
        defaults = []
        for field in annotations:
            if field in ns:
                defaults.append(ns[field])
            elif defaults:
                raise TypeError("non-default field %r follows default fields" % field)
        made = _namedtuple(typename, list(annotations), defaults=defaults, module=str(ns["__module__"]))
        made.__annotations__ = annotations
        for key, value in ns.items():
            if key in _PROHIBITED:
                raise AttributeError("cannot overwrite NamedTuple attribute " + key)
            if key not in _KEPT and key not in annotations:
                setattr(made, key, value)
        return made


class NamedTuple(metaclass=_NamedTupleMeta):
    """Derive from it, as from ``typing.NamedTuple``."""
