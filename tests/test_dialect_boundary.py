"""Which store, which upsert: answered by ``newsletter.db.dialect`` only (issue 15 §2).

Outside ``newsletter/db/`` no module reads ``….dialect.name`` to pick a branch, and none imports
SQLAlchemy's per-dialect ``insert`` (``from sqlalchemy.dialects.postgresql import insert``, or
``postgresql.insert`` after ``from sqlalchemy.dialects import postgresql``): they ask
``is_postgres``, ``dialect_name``, ``upsert_insert``, ``per_dialect``/``for_store`` or ``id_in``.
Column types (``ARRAY``, ``JSONB``) and compiling with a connection's own ``dialect`` are fine:
they choose nothing.

An AST walk over the source, one test per room, so a failure names the room and lists each
offending ``file:line``. No import is executed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "newsletter"
#: the one place allowed to answer "which store" (db.dialect, and the store machinery beside it)
STORE_PLACE = PACKAGE / "db"
#: the modules whose ``insert`` is per dialect
DIALECT_MODULES = ("sqlalchemy.dialects.postgresql", "sqlalchemy.dialects.sqlite")
TOP_LEVEL = "newsletter (top-level modules)"


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _reads_dialect_name(node: ast.Attribute) -> bool:
    """``x.dialect.name`` (``session.get_bind().dialect.name`` too) or ``dialect.name``."""
    if node.attr != "name":
        return False
    owner = node.value
    return (isinstance(owner, ast.Attribute) and owner.attr == "dialect") or (
        isinstance(owner, ast.Name) and owner.id == "dialect"
    )


def _dialect_module_names(tree: ast.AST) -> set[str]:
    """The names under which the module reaches a dialect package (``postgresql``, ``pg``,
    ``sqlalchemy.dialects.sqlite``), so that ``<name>.insert`` can be recognised."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy.dialects":
            bound |= {
                alias.asname or alias.name
                for alias in node.names
                if f"sqlalchemy.dialects.{alias.name}" in DIALECT_MODULES
            }
        elif isinstance(node, ast.Import):
            bound |= {alias.asname or alias.name for alias in node.names if alias.name in DIALECT_MODULES}
    return bound


def _dialect_insert_owner(node: ast.Attribute, modules: set[str]) -> str | None:
    """For ``<dialect module>.insert`` (also ``(postgresql if … else sqlite).insert``), the module."""
    if node.attr != "insert":
        return None
    owners = (_dotted(part) for part in ast.walk(node.value) if isinstance(part, ast.Name | ast.Attribute))
    return next((owner for owner in owners if owner in modules), None)


def store_choices(source: str, name: str) -> Iterator[str]:
    """Each place ``source`` chooses a store itself, as ``name:line what``, in line order."""
    tree = ast.parse(source)
    modules = _dialect_module_names(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _reads_dialect_name(node):
            found.append((node.lineno, "reads .dialect.name (ask newsletter.db.dialect: is_postgres, dialect_name)"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(DIALECT_MODULES):
            inserts = sorted(alias.name for alias in node.names if alias.name.lower() == "insert")
            if inserts:
                found.append((node.lineno, f"imports {', '.join(inserts)} from {node.module} (use upsert_insert)"))
        elif isinstance(node, ast.Attribute) and (owner := _dialect_insert_owner(node, modules)):
            found.append((node.lineno, f"uses {owner}.insert (use upsert_insert/per_dialect)"))
    for line, what in sorted(found):
        yield f"{name}:{line} {what}"


def _rooms() -> dict[str, list[Path]]:
    """Every module under ``newsletter/`` but ``db/``, grouped by room (top folder)."""
    rooms: dict[str, list[Path]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(STORE_PLACE) or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(PACKAGE)
        room = relative.parts[0] if len(relative.parts) > 1 else TOP_LEVEL
        rooms.setdefault(room, []).append(path)
    return rooms


ROOMS = _rooms()


def _found(room: str) -> list[str]:
    return [
        found
        for path in ROOMS[room]
        for found in store_choices(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_rooms_ask_db_dialect_which_store(room: str) -> None:
    found = _found(room)
    assert not found, "which store / which upsert is answered by newsletter/db/dialect.py only:\n" + "\n".join(found)


def test_the_walk_covers_the_rooms() -> None:
    """A walk that found no rooms (a moved package, a wrong root) would pass by checking nothing."""
    assert {"campaigns", "delivery", "reports", "tracking"} <= set(ROOMS)
    assert "db" not in ROOMS


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ('if session.get_bind().dialect.name == "postgresql": pass', "reads .dialect.name"),
        ('ok = engine.dialect.name != "sqlite"', "reads .dialect.name"),
        ("form = FORMS[conn.dialect.name]", "reads .dialect.name"),
        ('sqlite_side = dialect.name in ("sqlite",)', "reads .dialect.name"),
        ("from sqlalchemy.dialects.postgresql import insert", "imports insert from sqlalchemy.dialects.postgresql"),
        (
            "from sqlalchemy.dialects.sqlite import insert as sqlite_insert",
            "imports insert from sqlalchemy.dialects.sqlite",
        ),
        (
            "from sqlalchemy.dialects.postgresql.dml import Insert",
            "imports Insert from sqlalchemy.dialects.postgresql.dml",
        ),
        ("from sqlalchemy.dialects import postgresql\nstatement = postgresql.insert(table)", "uses postgresql.insert"),
        ("from sqlalchemy.dialects import sqlite as lite\nmake = lite.insert", "uses lite.insert"),
        (
            "import sqlalchemy.dialects.postgresql\nsqlalchemy.dialects.postgresql.insert(t)",
            "uses sqlalchemy.dialects.postgresql.insert",
        ),
        (
            "from sqlalchemy.dialects import postgresql, sqlite\nmake = (postgresql if pg else sqlite).insert",
            "uses postgresql.insert",
        ),
    ],
)
def test_the_walk_finds_each_kind_of_store_choice(source: str, says: str) -> None:
    found = list(store_choices(source, "x.py"))
    assert len(found) == 1 and found[0].startswith(f"x.py:{source.count(chr(10)) + 1} {says}"), found


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy.dialects.postgresql import ARRAY, JSONB",  # column types choose nothing
        "from sqlalchemy.dialects import postgresql\ncolumn_type = postgresql.JSONB()",
        "sql = str(statement.compile(dialect=connection.dialect))",  # the connection's own dialect
        "from newsletter.db.dialect import is_postgres\nif is_postgres(session): pass",
        "from newsletter.db.dialect import upsert_insert\nstatement = upsert_insert(session)(table)",
        "from sqlalchemy import insert\nstatement = insert(table)",  # the generic insert needs no store
        "person.name = 'Ada'",
    ],
)
def test_the_walk_leaves_store_neutral_code_alone(source: str) -> None:
    assert list(store_choices(source, "x.py")) == []
