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
    ("StaffUser", "staff_users", "newsletter/staff/accounts.py"),
    ("AuditEntry", "audit_log", "newsletter/staff/audit.py"),
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
    strays = [
        f"{name}:{line}"
        for name, tree in _sources()
        if not name.startswith(owner)
        for line in _writes(tree, model, table)
    ]
    assert strays == [], f"{table} is written outside {owner}: {strays}; call the owner's face instead"


def test_the_check_sees_a_stray_writer() -> None:
    """The check itself: each shape of write it knows is found (so an empty list above means
    something)."""
    source = """
session.add(models.Lead(subscriber_id=1))
db.execute(insert_(Lead).values(x=1))
db.execute(update(models.Lead).values(x=1))
leads = Lead.__table__
conn.exec_driver_sql("INSERT INTO leads (x) VALUES (1)")
db.execute(select(Lead))  # a read: allowed
"""
    assert _writes(ast.parse(source), "Lead", "leads") == [2, 3, 4, 5, 6]


#: The only modules that may case-fold an address: the normal form is defined there (issue 15 §1).
_EMAIL_FORM = ("newsletter/audiences/emails.py", "newsletter/emailaddr.py")
_ADDRESSY = re.compile(r"email|address", re.IGNORECASE)


def _folds_address(tree: ast.AST) -> list[int]:
    """Lines calling ``.lower()`` / ``.casefold()`` on an expression naming an email or address
    (``r.email.strip().lower()``, ``address.lower()``, ``_clean(email).lower()``)."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("lower", "casefold")
            and any(_ADDRESSY.search(_names(part) or "") for part in ast.walk(node.func.value))
        ):
            lines.append(node.lineno)
    return sorted(lines)


def test_only_the_email_module_folds_an_address() -> None:
    strays = [f"{name}:{line}" for name, tree in _sources() if name not in _EMAIL_FORM for line in _folds_address(tree)]
    assert strays == [], (
        f"an address is lower-cased outside {_EMAIL_FORM}: {strays}; use "
        "audiences.normalise_email (typed or imported) or trusted_email (provider, store)"
    )


def test_the_fold_check_sees_a_stray() -> None:
    source = """
key = r.email.strip().lower()
x = _clean(email).strip().lower() if email else None
domain = ctx.sending_domain.lower()  # not an address: allowed
"""
    assert _folds_address(ast.parse(source)) == [2, 3]


@pytest.mark.parametrize("raw", ["Jane.Doe@Example.com", "  bob+news@mail.example.org\n", "ALL@CAPS.EXAMPLE.COM"])
def test_trusted_email_gives_the_normal_form_of_a_good_address(raw: str) -> None:
    """The two functions of the email module agree wherever both apply (a valid address)."""
    from newsletter.audiences import normalise_email, trusted_email

    assert trusted_email(raw) == normalise_email(raw)
