"""``labelSelector`` and ``fieldSelector`` as the API server parses them.

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``,
joined by commas (commas inside parentheses belong to the set). Field selectors: ``path=v``,
``path==v``, ``path!=v`` over a dotted path of the object (``metadata.name``, ``spec.nodeName``).
A selector the server cannot parse is a 400, as the real one answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_SET = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


class SelectorError(ValueError):
    """The selector does not parse (the server answers 400 BadRequest)."""


def _split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def _requirement(text: str) -> Predicate:
    match = _SET.match(text)
    if match:
        key, op, values = match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}
        if op == "in":
            return lambda o: _labels(o).get(key) in values
        return lambda o: _labels(o).get(key) not in values
    for op in ("!=", "==", "="):
        if op in text:
            key, _, value = (s.strip() for s in text.partition(op))
            if not key:
                raise SelectorError(f"unable to parse requirement: {text!r}")
            if op == "!=":
                return lambda o: _labels(o).get(key) != value
            return lambda o: _labels(o).get(key) == value
    if text.startswith("!"):
        key = text[1:].strip()
        return lambda o: key not in _labels(o)
    if not re.fullmatch(r"[A-Za-z0-9./_-]+", text):
        raise SelectorError(f"unable to parse requirement: {text!r}")
    return lambda o: text in _labels(o)


def label_selector(text: str | None) -> Predicate:
    """A predicate over objects for a ``labelSelector`` query parameter."""
    requirements = [_requirement(part) for part in _split(text or "")]
    return lambda o: all(r(o) for r in requirements)


def _path(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_selector(text: str | None) -> Predicate:
    """A predicate over objects for a ``fieldSelector`` query parameter."""
    checks: list[Predicate] = []
    for part in _split(text or ""):
        for op in ("!=", "==", "="):
            if op in part:
                path, _, value = (s.strip() for s in part.partition(op))
                break
        else:
            raise SelectorError(f"invalid field selector: {part!r}")
        if op == "!=":
            checks.append(lambda o, p=path, v=value: _path(o, p) != v)
        else:
            checks.append(lambda o, p=path, v=value: _path(o, p) == v)
    return lambda o: all(c(o) for c in checks)
