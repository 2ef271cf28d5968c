"""A thousand ids as ONE bound parameter.

``col IN (:a, :b, …)`` with a thousand ids costs SQLAlchemy a re-render and a parameter per id
on every execution, and a Python list bound as a PostgreSQL array is adapted element by element
in Python. On PostgreSQL the ids travel as one text literal (``'{1,2,3}'``) cast to ``bigint[]``
on the server and compared with ``= ANY``; SQLite keeps a plain ``IN`` (its parameters are cheap).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import BigInteger, String, any_, bindparam, cast
from sqlalchemy.dialects.postgresql import ARRAY

__all__ = ["pg_array_literal", "id_in"]


def pg_array_literal(ids: Iterable[int]) -> str:
    """Integer ids as a PostgreSQL array literal: ``{1,2,3}``."""
    return "{" + ",".join(map(str, map(int, ids))) + "}"


def id_in(dialect: str, column: Any, ids: Sequence[int]) -> Any:
    """``column`` is one of ``ids``, in the cheapest form for ``dialect``."""
    if dialect == "postgresql":
        return column == any_(cast(bindparam("ids", pg_array_literal(ids), type_=String()), ARRAY(BigInteger())))
    return column.in_(list(ids))
