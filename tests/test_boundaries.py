"""Rooms are called through their faces (issue 15): the callers at the top of the house (the
command line, the demo and its made-up readers, the web app and the scheduler) import no ``newsletter.db.models``,
nothing from SQLAlchemy but the types a face takes (an ``Engine``, a ``Session``), and build or
run no statements. An AST walk over the source: no import is executed, no dependency needed.

``CALLERS`` is the table of packages and modules held to the rule; ``KNOWN_EXCEPTIONS`` the ones
not yet, each with the reason. A new bypass in a caller fails here with its file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: held to the rule: a folder (every module under it) or one module, relative to the checkout
CALLERS = (
    "newsletter/cli",
    "newsletter/demo.py",
    "newsletter/demo_activity.py",
    "newsletter/web",
    "newsletter/scheduling",
)

#: not yet held to it, and why; when one is clean, move it to CALLERS (a test below says so)
KNOWN_EXCEPTIONS: dict[str, str] = {}

#: what a face may be handed from a caller: opened by ``db``, passed through, never queried
PASS_THROUGH = {"Engine", "Session"}
#: statement builders: a bare call to one of these builds SQL
BUILDERS = {"select", "update", "insert", "delete", "text"}
#: running a statement: ``session.execute(...)``, ``session.scalar(...)``, ``connection.scalars(...)``
RUNNERS = {"execute", "scalar", "scalars", "exec_driver_sql"}


def _modules(place: str) -> list[Path]:
    path = ROOT / place
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def bypasses(source: str, name: str) -> Iterator[str]:
    """Each way ``source`` reaches below a face, as ``name:line what``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported = {alias.name for alias in node.names}
            if node.module.startswith("newsletter.db.models") or (
                node.module == "newsletter.db" and "models" in imported
            ):
                yield f"{name}:{node.lineno} imports newsletter.db.models"
            elif node.module.split(".")[0] == "sqlalchemy" and imported - PASS_THROUGH:
                yield f"{name}:{node.lineno} imports {', '.join(sorted(imported - PASS_THROUGH))} from {node.module}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sqlalchemy" or alias.name.startswith("newsletter.db.models"):
                    yield f"{name}:{node.lineno} imports {alias.name}"
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in BUILDERS:
                yield f"{name}:{node.lineno} builds a statement with {func.id}()"
            elif isinstance(func, ast.Attribute) and func.attr in RUNNERS:
                yield f"{name}:{node.lineno} runs a statement with .{func.attr}()"


def _found(place: str) -> list[str]:
    return [
        found
        for path in _modules(place)
        for found in bypasses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]


@pytest.mark.parametrize("place", CALLERS)
def test_callers_go_through_the_rooms_faces(place: str) -> None:
    assert (ROOT / place).exists(), f"{place} is in CALLERS but does not exist"
    found = _found(place)
    assert not found, "call the room's face instead (newsletter/<room>/__init__.py):\n" + "\n".join(found)


def test_each_known_exception_is_still_needed() -> None:
    """The table stays true: a caller that no longer bypasses a face is held to the rule. (Empty
    today: cli, demo, demo_activity, web and scheduling all go through the faces; the table stays for the next
    caller that must wait.)"""
    for place in sorted(KNOWN_EXCEPTIONS):
        assert _found(place), f"{place} goes through the faces now: move it from KNOWN_EXCEPTIONS to CALLERS"


def test_the_table_names_every_caller_once() -> None:
    assert not set(CALLERS) & set(KNOWN_EXCEPTIONS)
    assert all(reason.strip() for reason in KNOWN_EXCEPTIONS.values())


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("from newsletter.db import models, session_scope", "imports newsletter.db.models"),
        ("from newsletter.db.models import Article", "imports newsletter.db.models"),
        ("import newsletter.db.models as m", "imports newsletter.db.models"),
        ("from sqlalchemy import Engine, func", "imports func from sqlalchemy"),
        ("import sqlalchemy as sa", "imports sqlalchemy"),
        ("rows = select(Article)", "builds a statement with select()"),
        ("session.execute(statement)", "runs a statement with .execute()"),
        ("n = session.scalar(statement)", "runs a statement with .scalar()"),
        ("rows = list(session.scalars(statement))", "runs a statement with .scalars()"),
    ],
)
def test_the_walk_finds_each_kind_of_bypass(source: str, says: str) -> None:
    assert [f"x.py:1 {says}"] == list(bypasses(source, "x.py"))


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy import Engine",
        "from newsletter.db import session_scope\nwith session_scope(engine) as session:\n    rows = list_articles(session)",
        "progress.update(task, total=3)",  # a method named like a builder is not SQL
        "from newsletter.campaigns import list_campaigns",
    ],
)
def test_the_walk_leaves_face_calls_alone(source: str) -> None:
    assert list(bypasses(source, "x.py")) == []


def test_the_article_list_face_returns_plain_rows(engine, seed_article_path) -> None:  # type: ignore[no-untyped-def]
    """``newsletter article list`` reads ``campaigns.list_articles`` (it used to query the table
    itself): plain rows in id order, readable after the session is closed."""
    from dataclasses import asdict

    from newsletter.campaigns import ArticleRow, import_article, list_articles
    from newsletter.db import session_scope

    with session_scope(engine) as session:
        imported = import_article(session, seed_article_path)
        expected = ArticleRow(imported.row.id, imported.row.slug, imported.article.title, imported.row.published_on)
    with session_scope(engine) as session:
        rows = list_articles(session)
    assert rows == [expected]
    assert not any(hasattr(value, "_sa_instance_state") for value in asdict(rows[0]).values())  # no ORM rows
