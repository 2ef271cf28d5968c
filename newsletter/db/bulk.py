"""PostgreSQL bulk rows: ``COPY`` into a temporary table of the session, then one ``INSERT … SELECT``.

Binding a thousand rows as parameters costs psycopg (and SQLAlchemy) Python work for every
value, and one JSON document read by ``json_to_recordset`` costs the server a JSON parse per
row; ``COPY`` rows are formatted by psycopg's C code and read by the server's cheapest input
path. The table is the session's own and declared ``ON COMMIT DELETE ROWS``, so it is empty at
the start of every transaction; a caller that copies twice in one transaction empties it itself
(``DELETE … RETURNING`` in the statement that reads it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

__all__ = ["copy_rows"]


def copy_rows(conn: Connection, copy: str, rows: Iterable[Sequence[Any]], *, create: str | None = None) -> None:
    """``COPY`` ``rows`` in ``conn``'s transaction, through psycopg's own connection.

    ``copy`` is ``COPY table (columns) FROM STDIN``; ``create`` (``CREATE TEMPORARY TABLE IF NOT
    EXISTS … ON COMMIT DELETE ROWS``) runs first, NOTICEs off, unless the caller knows the session
    already has the table. A value is ``None`` for NULL, else what psycopg adapts (a ``str`` is
    sent as text, for the server to parse as the column's type).
    """
    driver = conn.connection.driver_connection  # psycopg's connection, in the same transaction
    with driver.cursor() as cursor:  # type: ignore[union-attr]
        if create:
            cursor.execute("SET LOCAL client_min_messages TO warning; " + create)  # no "already exists" NOTICE
        with cursor.copy(copy) as out:
            write = out.write_row
            for row in rows:
                write(row)
