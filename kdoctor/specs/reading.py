"""Reading untrusted task files: bounded, strict YAML (and JSON, which is YAML).

A task file comes from anyone who can run ``kdoctor run`` or reach the API, so reading one must
not cost more than a small, fixed amount of time and memory, and must not crash:

=======================================  =====================================================
what a file may try                      what happens
=======================================  =====================================================
be huge, ``/dev/zero``, a FIFO, a        only regular files are read, at most
directory                                :data:`MAX_BYTES`; anything else is refused unopened
not be UTF-8                             refused with the byte offset
alias bombs (``&a [*b, *b, ...]``)       the document's size counts every alias expansion: past
                                         :data:`MAX_NODES` it is refused before it is built
nest 1,000 levels deep                   past :data:`MAX_DEPTH` levels: refused
repeat a key                             refused, naming the key and both lines
use a list or mapping as a key           refused
carry several documents                  refused (one task per file)
=======================================  =====================================================

Everything echoed back in an error is cut to :data:`ECHO_CHARS`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from kdoctor.errors import FieldProblem, SpecError

__all__ = ["ECHO_CHARS", "MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "check_data", "load_yaml", "read_file", "shown"]

MAX_BYTES = 1024 * 1024
"""A task file is a few KB; a megabyte leaves room for an inline body."""
MAX_NODES = 20_000
"""Scalars, lists and mappings in one document, aliases counted as what they expand to."""
MAX_DEPTH = 32
"""Nesting levels of lists and mappings (a task file has about six)."""
ECHO_CHARS = 80
"""Error messages quote at most this much of what the file said."""


def shown(value: object, limit: int = ECHO_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, saying how long it was."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def read_file(path: Path, what: str = "spec file") -> str:
    """The text of a regular file of at most :data:`MAX_BYTES`, decoded as UTF-8."""
    origin = str(path)

    def refuse(message: str) -> SpecError:
        return SpecError([FieldProblem("", message)], origin, what)

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise refuse(f"cannot read it: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refuse("not a regular file (a device, FIFO, socket or directory cannot be a task file)")
        if info.st_size > MAX_BYTES:
            raise refuse(f"{info.st_size} bytes is more than a task file can be ({MAX_BYTES} bytes at most)")
        raw = os.read(fd, MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise refuse(f"more than a task file can be ({MAX_BYTES} bytes at most)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start:exc.start + 1]
        raise refuse(f"not UTF-8 text (byte {exc.start} is {bad!r}); save it as UTF-8") from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, measured as it composes: size (aliases expanded), depth, keys."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._sizes: dict[int, int] = {}
        self._total = 0
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            # An alias costs what its anchor's whole subtree costs, every time it is used.
            self._add(self._sizes.get(id(node), 1), mark)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep", mark)
        start = self._total
        node = super().compose_node(parent, index)  # its children are counted as they are composed
        self._depth -= 1
        self._add(1, mark)
        self._sizes[id(node)] = self._total - start
        return node

    def _add(self, amount: int, mark: Any) -> None:
        self._total += amount
        if self._total > MAX_NODES:
            raise _Refused(f"more than {MAX_NODES} values once its aliases are expanded (an alias bomb?)", mark)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                raise _Refused("a list or a mapping cannot be a key", key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _Refused(f"key {shown(key)} appears twice (first on line {seen[key] + 1})",
                               key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


class _Refused(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        super().__init__(message + where)


def load_yaml(text: str, origin: str = "", what: str = "spec") -> Any:
    """The one YAML (or JSON) document in ``text``, read within the bounds above."""

    def refuse(message: str) -> SpecError:
        return SpecError([FieldProblem("", message)], origin, what)

    if len(text) > MAX_BYTES:
        raise refuse(f"more than a task file can be ({MAX_BYTES} characters at most)")
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters at once
        raise refuse(f"not valid YAML: {_cut(str(exc))}") from None
    try:
        docs = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            docs.append(loader.get_data())
            if len(docs) > 1:
                break
    except _Refused as exc:
        raise refuse(f"refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise refuse(f"not valid YAML: {_cut(str(exc))}") from None
    except RecursionError:
        raise refuse(f"nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        raise refuse(f"expected one YAML document, found {len(docs) if len(docs) < 2 else 'several'}")
    return docs[0]


def check_data(data: Any, origin: str = "") -> None:
    """Apply the same bounds to data that did not come from YAML (a dict given to the API)."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise SpecError([FieldProblem("", f"more than {MAX_NODES} values: too large for a task")], origin)
        if depth > MAX_DEPTH:
            raise SpecError([FieldProblem("", f"nested more than {MAX_DEPTH} levels deep")], origin)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
            stack.extend((k, depth + 1) for k in item)
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
