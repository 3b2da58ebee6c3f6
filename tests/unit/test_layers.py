"""The import rules and the SQL room of docs/architecture.md, checked over the source tree."""

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tolem"

# Uppercase keywords in statement shape: prose in comments and docstrings is not looked at.
_SQL = re.compile(r"\b(SELECT\s.*\bFROM\b|INSERT\s+INTO\b|DELETE\s+FROM\b|UPDATE\s+\w+\s+SET\b)", re.DOTALL)


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


MODULES = dict(_modules())


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
    return names


def _in(name: str, room: str) -> bool:
    return name == room or name.startswith(room + ".")


def _offences(room: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for module, tree in MODULES.items():
        if _in(module, room):
            bad = sorted(i for i in _imports(tree) if any(_in(i, f) for f in forbidden))
            if bad:
                found[module] = bad
    return found


def _docstrings(tree: ast.Module) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def test_core_imports_no_io_library() -> None:
    """core/ imports only the standard library, structlog and core itself."""
    allowed = {*sys.stdlib_module_names, "structlog", "tolem"}
    found = {
        module: sorted(
            i
            for i in _imports(tree)
            if i.split(".")[0] not in allowed or (_in(i, "tolem") and not _in(i, "tolem.core"))
        )
        for module, tree in MODULES.items()
        if _in(module, "tolem.core")
    }
    assert {m: bad for m, bad in found.items() if bad} == {}


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [
        (
            "tolem.db",
            (
                "aiohttp",
                "tolem.gateway",
                "tolem.admin",
                "tolem.console",
                "tolem.ops",
                "tolem.cli",
                "tolem.app",
                "tolem.protocols",
            ),
        ),
        (
            "tolem.protocols",
            (
                "asyncpg",
                "tolem.db",
                "tolem.admin",
                "tolem.console",
                "tolem.billing",
                "tolem.cli",
                "tolem.app",
                "tolem.gateway",
            ),
        ),
        (
            "tolem.billing",
            ("tolem.admin", "tolem.console", "tolem.cli", "tolem.app", "tolem.gateway", "tolem.protocols"),
        ),
        (
            "tolem.reconcile",
            ("aiohttp", "tolem.admin", "tolem.console", "tolem.cli", "tolem.app", "tolem.gateway"),
        ),
    ],
)
def test_room_keeps_to_its_layer(room: str, forbidden: tuple[str, ...]) -> None:
    """A room imports nothing from the layers above it or beside it that it must not know."""
    assert _offences(room, forbidden) == {}


def test_sql_text_lives_only_in_db() -> None:
    """No string outside db/ holds an SQL statement: other rooms call db functions by name."""
    found: dict[str, list[int]] = {}
    for module, tree in MODULES.items():
        if _in(module, "tolem.db"):
            continue
        docs = _docstrings(tree)
        lines = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docs
            and _SQL.search(node.value)
        ]
        if lines:
            found[module] = lines
    assert found == {}


def test_the_rules_see_the_tree() -> None:
    """The checks above read every room: a renamed package cannot slip past them."""
    rooms = {name.split(".")[1] for name in MODULES if name.count(".") >= 1}
    assert {"core", "db", "protocols", "billing", "reconcile", "cli", "admin"} <= rooms
    assert any(_SQL.search(text) for text in ("SELECT id FROM payers", "UPDATE payers SET name = $1"))
