"""Engines and sessions for both stores.

SQLite is the embedded default: WAL so the web app reads while a send writes, foreign keys on
(SQLite leaves them off unless asked), and a busy timeout so two processes wait for each other
instead of failing. PostgreSQL URLs are normalised to the psycopg 3 driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, CursorResult, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Executable

from newsletter.db import store_errors
from newsletter.db.dialect import SUPPORTED
from newsletter.db.filemode import keep_store_private


def normalise_url(url: str) -> str:
    """Accept the URLs people paste (``postgres://``, ``postgresql://``) and pick psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


PG_CONNECT_TIMEOUT = 10  # seconds: a store behind a firewall that drops packets is said, not waited on for minutes


def make_engine(url: str, **kwargs) -> Engine:  # type: ignore[no-untyped-def]
    """An engine for ``url``. A mistake in the address (unparsable, an unsupported store, a
    missing driver) is a UserError now; a store that cannot be reached is one whenever a new
    connection cannot be opened (``store_errors.translate_connect_error``)."""
    parsed = _parse(url)
    connect_args = kwargs.pop("connect_args", {})
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed, connect_args={"timeout": 30, **connect_args}, **kwargs)
            event.listen(engine, "connect", _sqlite_pragmas)
            keep_store_private(engine, parsed)  # the store file is made 0600 (db/filemode.py)
        else:
            timeout = {} if "connect_timeout" in parsed.query else {"connect_timeout": PG_CONNECT_TIMEOUT}
            engine = create_engine(parsed, pool_pre_ping=True, connect_args={**timeout, **connect_args}, **kwargs)
    except ImportError as error:
        raise store_errors.driver_missing(parsed, error) from None
    event.listen(engine, "handle_error", lambda context: store_errors.translate_connect_error(parsed, context))
    return engine


def _parse(url: str) -> URL:
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        raise store_errors.unparsable(url) from None
    if parsed.get_backend_name() not in SUPPORTED:  # db.dialect: the stores the product supports
        raise store_errors.unsupported(parsed)
    return parsed


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(bind: Engine | Connection) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error, always close.

    On a connection that is held open (the send holds its own), the session commits what it
    began on it; on the engine, it checks a pooled connection out and back in.
    """
    session = Session(bind, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def rows_changed(session: Session | Connection, statement: Executable) -> int:
    """Run an ``UPDATE``/``DELETE``/``INSERT`` and return how many rows it changed.

    A DML statement's result is a ``CursorResult`` (it has ``rowcount``), but ``execute`` is typed
    for every statement; this is the one place that says so."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount or 0
