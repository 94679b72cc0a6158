"""Imports flow one way (DESIGN.md §6): probes never import Celery, only inventory talks to
Kubernetes, specs import nothing of kdoctor but specs and errors; the public API is curated."""

from __future__ import annotations

import ast
from pathlib import Path

import kdoctor.api

PACKAGE = Path(kdoctor.api.__file__).parent.parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


def test_probes_and_reports_never_import_celery() -> None:
    for sub in ("probes", "reports", "specs", "inventory"):
        for path in _modules(sub):
            bad = {n for n in _imports(path) if n == "celery" or n.startswith(("celery.", "kdoctor.tasks"))}
            assert not bad, f"{path} imports {bad}"


def test_only_inventory_imports_kubernetes() -> None:
    for path in PACKAGE.rglob("*.py"):
        if "inventory" in path.parts:
            continue
        bad = {n for n in _imports(path) if n == "kubernetes" or n.startswith("kubernetes.")}
        assert not bad, f"{path} imports {bad}"


def test_specs_depend_on_nothing_above_them() -> None:
    for path in _modules("specs"):
        for name in _imports(path):
            if name.startswith("kdoctor."):
                assert name.startswith(("kdoctor.specs", "kdoctor.errors")), f"{path} imports {name}"


def test_public_api_is_exactly_the_curated_list() -> None:
    public = {n for n in dir(kdoctor.api) if not n.startswith("_")} - {"client"}
    assert set(kdoctor.api.__all__) == public
