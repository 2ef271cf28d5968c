"""The per-store writers of an import chunk: the statements of ``queries``, run in the fastest
form each store offers.

The statements are compiled once per import to SQL text and the rows travel in bulk: as a plain
DB-API ``executemany`` on SQLite (upsert, then tags), as one ``COPY`` into a temporary table on
PostgreSQL, read by one statement that writes both tables (see :class:`PostgresStore`). Values
are converted by the columns' own types (``db_time``, ``db_json``) so the store receives exactly
what the ORM would write.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

from newsletter.audiences import queries
from newsletter.db.bulk import copy_rows
from newsletter.db.dialect import for_store
from newsletter.db.models import Subscriber

__all__ = ["ChunkStore", "PostgresStore", "SqliteStore", "store_for"]

Tagged = list[tuple[str, frozenset[str] | set[str]]]


class ChunkStore:
    """The statements of a chunk for one store (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._time = _bind_processor(Subscriber.__table__.c.consent_at.type, engine)
        self.lookup_stmt = queries.lookup(self._email_list())

    def _email_list(self) -> Any:
        raise NotImplementedError

    def lookup(self, conn: Connection, emails: list[str]) -> list[tuple[str, int | None, str | None, str | None]]:
        """(email, subscriber id, status, suppression reason) for the addresses already known."""
        return [tuple(row) for row in conn.execute(self.lookup_stmt, {"emails": json.dumps(emails)}).all()]

    def db_time(self, value: datetime) -> Any:
        return self._time(value) if self._time else value

    def db_json(self, value: dict[str, Any]) -> Any:
        return value

    #: Let the parser go on as soon as the writer takes a chunk; else the store calls ``release``.
    RELEASE_AT_START = True

    def write(
        self,
        conn: Connection,
        rows: list[tuple[Any, ...]],
        tagged: Tagged,
        existing: set[str] | None,
        release: Callable[[], None],
    ) -> None:
        """Upsert ``rows``, then add the tags of each address written: ``tagged`` is (email, tags).

        ``existing`` is the addresses the lookup found stored (None: any may be). A store may
        insert the others without ``ON CONFLICT``, and then fail with :meth:`lost_race`. Unless
        ``RELEASE_AT_START``, the store calls ``release`` when its long wait for the database begins."""
        ids = self.upsert(conn, rows)
        pairs = [(ids[email], tag) for email, tags in tagged if email in ids for tag in tags]
        if pairs:
            self.add_tags(conn, pairs)

    def lost_race(self, error: DBAPIError) -> bool:
        """Whether ``error`` is another writer storing an address that the lookup found new."""
        return False

    def upsert(self, conn: Connection, rows: list[tuple[Any, ...]]) -> dict[str, int]:
        """Rows are tuples in ``queries.SUBSCRIBER_COLUMNS`` order, already through db_time/db_json.
        Returns the id of every address written (an erased one is not)."""
        raise NotImplementedError

    def add_tags(self, conn: Connection, pairs: list[tuple[int, str]]) -> None:
        """(subscriber id, tag) pairs; a pair already there is left alone."""
        raise NotImplementedError


def _bind_processor(type_: Any, engine: Engine) -> Callable[[Any], Any] | None:
    """The function SQLAlchemy applies to a value of this column type for this store."""
    processor: Callable[[Any], Any] | None = type_.dialect_impl(engine.dialect).bind_processor(engine.dialect)
    return processor


class SqliteStore(ChunkStore):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._json = _bind_processor(Subscriber.__table__.c.attributes.type, engine)
        self.upsert_sql = self._compile(queries.sqlite_upsert(), queries.SUBSCRIBER_COLUMNS)
        self.ids_stmt = queries.sqlite_ids()
        self.tags_sql = self._compile(queries.sqlite_add_tags(), ("subscriber_id", "tag"))

    def _compile(self, stmt: Any, names: Sequence[str]) -> str:
        """SQL text with ``?`` for the rows' values only (the constants are rendered inline)."""
        compiled = stmt.compile(dialect=self.engine.dialect, compile_kwargs={"render_postcompile": True})
        if tuple(compiled.positiontup or ()) != tuple(names):  # pragma: no cover - a guard for SQLAlchemy upgrades
            raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
        return str(compiled)

    def _email_list(self) -> Any:
        return queries.sqlite_email_list()

    def db_json(self, value: dict[str, Any]) -> Any:
        if not value:
            return "{}"
        return self._json(value) if self._json else value

    def upsert(self, conn: Connection, rows: list[tuple[Any, ...]]) -> dict[str, int]:
        conn.exec_driver_sql(self.upsert_sql, rows)
        emails = json.dumps([row[0] for row in rows])
        return dict((email, sid) for sid, email in conn.execute(self.ids_stmt, {"emails": emails}).all())

    def add_tags(self, conn: Connection, pairs: list[tuple[int, str]]) -> None:
        conn.exec_driver_sql(self.tags_sql, pairs)


class PostgresStore(ChunkStore):
    """After the lookup, a chunk is one ``COPY`` and one statement (``queries.postgres_write``).

    The rows, each with its tags as an array and whether the lookup found it stored, are copied
    (``newsletter.db.bulk.copy_rows``) into ``subscribers_incoming``, a temporary table of the
    session made on the first chunk. If another writer stores one of the "new" addresses between
    the lookup and the insert, the unique violation (:meth:`lost_race`) rolls the chunk back and
    ``ChunkWriter`` writes the same rows again with every one through ``ON CONFLICT``.

    Against the earlier form (the rows as one ``json_to_recordset`` document for the upsert, the
    ids back to Python, the tags as a second document), per 2,000 rows: the server reads COPY
    text (6 ms) instead of parsing JSON (12 ms), the ``ON CONFLICT`` arbitration of new rows and
    of their tags is gone (6 ms), and psycopg formats the rows in C where Python built and
    encoded a dict per row. Figures: bench/RESULTS.md, section 3.
    """

    TABLE = queries.INCOMING_TABLE
    RELEASE_AT_START = False

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        incoming = queries.postgres_incoming()
        self.create_sql = str(CreateTable(incoming, if_not_exists=True).compile(dialect=engine.dialect)).strip()
        self.copy_sql = queries.postgres_copy(incoming)
        compiled = queries.postgres_write(incoming).compile(
            dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        if compiled.positiontup:  # pragma: no cover - a guard for SQLAlchemy upgrades
            raise RuntimeError(f"unexpected parameters {compiled.positiontup}")
        self.write_sql = str(compiled)
        self._has_table: Any = None  # the psycopg connection known to have the temporary table

    def _email_list(self) -> Any:
        return queries.postgres_email_list()

    def lookup(self, conn: Connection, emails: list[str]) -> list[tuple[str, int | None, str | None, str | None]]:
        # psycopg prepares a statement run five times, and PostgreSQL may then keep the generic
        # plan chosen while the table was small (a hash join over all subscribers): each chunk
        # of a big import into a fresh table got slower, 40 ms to 220 ms per chunk over 1M rows,
        # wherever autovacuum had not analyzed the table yet. A custom plan each time stays on the
        # email index.
        driver: Any = conn.connection.driver_connection
        threshold = getattr(driver, "prepare_threshold", None)
        if threshold is None:
            return super().lookup(conn, emails)
        driver.prepare_threshold = None
        try:
            return super().lookup(conn, emails)
        finally:
            driver.prepare_threshold = threshold

    def db_time(self, value: datetime) -> Any:
        return value.astimezone(timezone.utc).isoformat()  # COPY text, read as timestamptz

    def db_json(self, value: dict[str, Any]) -> Any:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else "{}"

    def write(
        self,
        conn: Connection,
        rows: list[tuple[Any, ...]],
        tagged: Tagged,
        existing: set[str] | None,
        release: Callable[[], None],
    ) -> None:
        arrays = {email: _pg_text_array(tags) for email, tags in tagged}
        driver = conn.connection.driver_connection
        # The table is made once per session; if this transaction fails, it may be gone again.
        create = None if driver is self._has_table else self.create_sql
        self._has_table = None
        copy_rows(
            conn,
            self.copy_sql,
            ((*row, existing is None or row[0] in existing, arrays.get(row[0])) for row in rows),
            create=create,
        )
        release()  # the parser may go on while the server works (see import_writer.BackgroundWriter)
        conn.exec_driver_sql(self.write_sql)
        self._has_table = driver

    def lost_race(self, error: DBAPIError) -> bool:
        cause = error.orig
        diag = getattr(cause, "diag", None)
        return (
            getattr(cause, "sqlstate", None) == "23505"  # unique_violation
            and getattr(diag, "table_name", None) == Subscriber.__tablename__
        )


def _pg_text_array(values: frozenset[str] | set[str]) -> str:
    """A PostgreSQL array literal of strings, each quoted: ``{"a","b \\"c\\""}``."""
    return "{" + ",".join(['"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values]) + "}"


_STORES: dict[str, type[ChunkStore]] = {"postgresql": PostgresStore, "sqlite": SqliteStore}


def store_for(engine: Engine) -> ChunkStore:
    """The chunk writer for the engine's store (``db.dialect.for_store`` refuses any other)."""
    return for_store(_STORES, engine)(engine)
