"""A thousand ids as ONE bound parameter.

``col IN (:a, :b, …)`` with a thousand ids costs SQLAlchemy a re-render and a parameter per id
on every execution, and a Python list bound as a PostgreSQL array is adapted element by element
in Python. On PostgreSQL the ids travel as one text literal (``'{1,2,3}'``) cast to ``bigint[]``
on the server and compared with ``= ANY``; on SQLite as one JSON array read by ``json_each``
(SQLite then probes the rowid once per value, as for an ``IN`` list).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import BigInteger, String, any_, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY

__all__ = ["id_in", "json_array_literal", "pg_array_literal", "pg_id_in"]


def pg_array_literal(ids: Iterable[int]) -> str:
    """Integer ids as a PostgreSQL array literal: ``{1,2,3}``."""
    return "{" + ",".join(map(str, map(int, ids))) + "}"


def id_in(dialect: str, column: Any, ids: Sequence[int]) -> Any:
    """``column`` is one of ``ids``, in the cheapest form for ``dialect``."""
    if dialect == "postgresql":
        return pg_id_in(column, pg_array_literal(ids))
    if dialect == "sqlite":
        listed = func.json_each(bindparam("ids", json_array_literal(ids), type_=String())).table_valued("value")
        return column.in_(select(listed.c.value))
    return column.in_(list(ids))


def pg_id_in(column: Any, literal: str | None = None) -> Any:
    """PostgreSQL: ``column = ANY(CAST(:ids AS BIGINT[]))``, ``:ids`` a :func:`pg_array_literal`;
    without ``literal``, a statement to compile once and run with ``ids`` given each time."""
    return column == any_(cast(bindparam("ids", literal, type_=String()), ARRAY(BigInteger())))


def json_array_literal(ids: Iterable[int]) -> str:
    """Integer ids as a JSON array: ``[1,2,3]``."""
    return "[" + ",".join(map(str, map(int, ids))) + "]"
