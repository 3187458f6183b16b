"""Render the agent's value trees (see ``services/capture``) as text."""

from __future__ import annotations

from typing import Any

from .safe import safe_block, safe_line

WIDTH = 100
INDENT = "  "


def one_line(node: dict[str, Any]) -> str:
    """The value on one line, Python-literal style."""
    if "error" in node:
        return "<%s: %s>" % (safe_line(node.get("t", "?")), safe_line(node["error"]))
    if node.get("cycle"):
        return "<cycle: %s>" % safe_line(node.get("t"))
    if "v" in node:
        return _scalar(node)
    if "r" in node:
        return safe_block(node["r"])  # a repr may span lines (tables, arrays); controls are escaped
    kind = node.get("kind")
    if kind == "dict":
        body = ", ".join("%s: %s" % (one_line(k), one_line(v)) for k, v in node["items"])
        return "{%s%s}" % (body, _more(node, bool(node["items"])))
    if kind in ("list", "tuple", "set"):
        body = ", ".join(one_line(item) for item in node["items"])
        opener, closer = _brackets(node)
        if kind == "tuple" and len(node["items"]) == 1 and not node.get("more"):
            body += ","
        return "%s%s%s%s" % (opener, body, _more(node, bool(node["items"])), closer)
    if kind == "object":
        body = ", ".join("%s=%s" % (safe_line(name), one_line(value)) for name, value in node["attrs"].items())
        return "%s(%s%s)" % (safe_line(node["t"]), body, _more(node, bool(node["attrs"])))
    return "<%s>" % safe_line(node.get("t", "?"))


def pretty(node: dict[str, Any], indent: int = 0) -> str:
    """Multi-line when the one-line form would not fit."""
    flat = one_line(node)
    if len(flat) + indent * len(INDENT) <= WIDTH or node.get("kind") is None:
        return flat
    pad = INDENT * (indent + 1)
    lines = []
    kind = node["kind"]
    if kind == "dict":
        opener, closer = "{", "}"
        for key, value in node["items"]:
            lines.append("%s%s: %s," % (pad, one_line(key), pretty(value, indent + 1)))
    elif kind == "object":
        opener, closer = safe_line(node["t"]) + "(", ")"
        for name, value in node["attrs"].items():
            lines.append("%s%s=%s," % (pad, safe_line(name), pretty(value, indent + 1)))
    else:
        opener, closer = _brackets(node)
        for item in node["items"]:
            lines.append("%s%s," % (pad, pretty(item, indent + 1)))
    if node.get("more"):
        lines.append("%s... %d more" % (pad, node["more"]))
    return "\n".join([opener, *lines, INDENT * indent + closer])


def _scalar(node: dict[str, Any]) -> str:
    value = node["v"]
    text = repr(value)
    if "cut" in node:
        text += "  (cut: %d of %d chars shown, -v shows more)" % tuple(node["cut"])
    return text


def _brackets(node: dict[str, Any]) -> tuple[str, str]:
    kind = node["kind"]
    if kind == "tuple":
        return "(", ")"
    if kind == "set":
        return "{", "}"
    if node.get("t") not in ("list", None):
        return safe_line(node["t"]) + "([", "])"
    return "[", "]"


def _more(node: dict[str, Any], has_items: bool) -> str:
    more = node.get("more") or 0
    if not more:
        return ""
    return "%s... %d more" % (", " if has_items else "", more)
