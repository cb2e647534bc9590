"""The arrows point one way: engine imports none of ours; tui, demo and licensing import only the
engine; only the command-line shell (lysmore) composes them. Checked on the source, every import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"engine", "tui", "demo", "licensing", "lysmore", "tests"}
ALLOWED = {"engine": set(), "tui": {"engine"}, "demo": {"engine"}, "licensing": {"engine"}}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_the_layout_allows(package: str) -> None:
    wrong = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = (imported_packages(path) & OURS) - ALLOWED[package] - {package}
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert wrong == {}, f"{package} may import only {sorted(ALLOWED[package])} of ours: {wrong}"


def test_engine_does_not_import_textual() -> None:
    hits = [str(p.relative_to(ROOT)) for p in (ROOT / "engine").rglob("*.py") if "textual" in imported_packages(p)]
    assert hits == []


def test_advisory_locks_are_transaction_scoped_only() -> None:
    """A session-level advisory lock would outlive its transaction behind a transaction pooler."""
    session_level = ("pg_advisory_lock(", "pg_try_advisory_lock(", "pg_advisory_lock_shared(",
                     "pg_try_advisory_lock_shared(", "pg_advisory_unlock")
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "engine").rglob("*"))
        if path.suffix in {".py", ".sql"}
        for name in session_level
        if name in path.read_text(encoding="utf-8")
    ]
    assert not found, found
