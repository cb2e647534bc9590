"""The engine's modules import one another one way: no module reaches back to one that imports it.

Imports under ``if TYPE_CHECKING:`` count too: a type-only back-reference is still a module that
knows the one above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import engine

ENGINE = Path(engine.__file__).parent


def _imports(path: Path) -> set[str]:
    """The engine modules ``path`` imports (``_job`` for ``from ._job import Job``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.level == 0 and node.module and (node.module == "engine" or node.module.startswith("engine.")):
                found.add(node.module.partition(".")[2] or "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "engine" or alias.name.startswith("engine."):
                    found.add(alias.name.partition(".")[2] or "__init__")
    return found


def graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in ENGINE.glob("*.py")}
    return {name: _imports(path) & set(modules) - {name} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle's smallest rotation found by depth-first search from each module."""
    found: set[tuple[str, ...]] = set()

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                i = path.index(min(path))
                found.add(tuple(path[i:] + path[:i]))
            elif nxt not in path and nxt > start:
                walk(start, nxt, [*path, nxt])

    for start in sorted(edges):
        walk(start, start, [start])
    return [list(c) for c in sorted(found)]


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_engine_modules_import_one_way() -> None:
    edges = graph()
    assert "_engine" in edges and "_producer" in edges["_engine"]  # the walk sees real imports
    assert cycles(edges) == []
