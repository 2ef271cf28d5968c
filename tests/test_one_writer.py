"""One way per job (issue 15 §1): each table with a single owner is written by that owner only.

Read from the source (AST), not by running anything: a second writer of ``leads`` or
``suppressions`` added anywhere in ``newsletter/`` fails here, naming the file and line, before it
can drift from the owner's rules (the race-safe upsert, the first reason kept, ...).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "newsletter"
#: Model class, table name, the only place (a file, or a folder ending in "/") allowed to write it.
OWNERS = [
    ("Lead", "leads", "newsletter/leads/"),
    ("Suppression", "suppressions", "newsletter/audiences/suppression.py"),
]
_WRITE_CALLS = ("insert", "upsert", "update", "delete")
#: Files that define tables rather than write them.
_DEFINITIONS = ("newsletter/db/models.py", "newsletter/db/migrations/")


def _sources() -> list[tuple[str, ast.AST]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE.parent).as_posix()
        if not name.startswith(_DEFINITIONS):
            out.append((name, ast.parse(path.read_text(encoding="utf-8"), filename=name)))
    return out


def _names(node: ast.AST) -> str | None:
    """``Lead`` for ``Lead`` and ``models.Lead``; the callee's name for a call."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _writes(tree: ast.AST, model: str, table: str) -> list[int]:
    """Lines that build a row of ``model`` or a write statement on it (ORM, Core or raw SQL)."""
    raw = re.compile(rf"\b(insert\s+into|update|delete\s+from)\s+{table}\b", re.IGNORECASE)
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            callee = _names(node.func) or ""
            if callee == model:
                lines.append(node.lineno)  # an ORM object: session.add(Lead(...))
            elif callee.lower().strip("_").endswith(_WRITE_CALLS) and node.args and _names(node.args[0]) == model:
                lines.append(node.lineno)  # insert(Lead), upsert(models.Lead), update(Lead), ...
        elif isinstance(node, ast.Attribute) and node.attr == "__table__" and _names(node.value) == model:
            lines.append(node.lineno)  # the Core table: whatever is done with it is a write here
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and raw.search(node.value):
            lines.append(node.lineno)
    return sorted(set(lines))


@pytest.mark.parametrize(("model", "table", "owner"), OWNERS, ids=[t for _, t, _ in OWNERS])
def test_only_the_owner_writes_the_table(model: str, table: str, owner: str) -> None:
    strays = [f"{name}:{line}" for name, tree in _sources() if not name.startswith(owner)
              for line in _writes(tree, model, table)]
    assert strays == [], f"{table} is written outside {owner}: {strays}; call the owner's face instead"


def test_the_check_sees_a_stray_writer() -> None:
    """The check itself: each shape of write it knows is found (so an empty list above means
    something)."""
    source = '''
session.add(models.Lead(subscriber_id=1))
db.execute(insert_(Lead).values(x=1))
db.execute(update(models.Lead).values(x=1))
leads = Lead.__table__
conn.exec_driver_sql("INSERT INTO leads (x) VALUES (1)")
db.execute(select(Lead))  # a read: allowed
'''
    assert _writes(ast.parse(source), "Lead", "leads") == [2, 3, 4, 5, 6]
