"""What is wrong with the store's address, in one line a person can act on.

``make_engine`` (db.engine) is where every engine is made, so it is the one place that turns a
bad ``NEWSLETTER_DATABASE_URL`` into a :class:`UserError`: an address that does not parse, a
store kind the product does not support, a driver that is not installed, and (through
SQLAlchemy's ``handle_error`` hook, when a new connection cannot be opened) a store that cannot
be reached. Messages name the host and port, the database, the folder or file; never the password.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy.engine import URL, ExceptionContext

from newsletter.errors import UserError

SETTING = "NEWSLETTER_DATABASE_URL"
SUPPORTED = "use sqlite:///path/to/newsletter.db or postgresql://user@host:5432/dbname"
_PASSWORD = re.compile(r"(?<=:)[^:/@\s]+(?=@)")  # the "pw" of "user:pw@host"


def redact(text: str) -> str:
    """``text`` with whatever sits between ``user:`` and ``@`` masked: for addresses that do
    not parse, so SQLAlchemy cannot hide the password for us."""
    return _PASSWORD.sub("***", text)


def unparsable(raw: str) -> UserError:
    return UserError(f"{redact(raw)!r} is not a store address; {SUPPORTED}", where=SETTING)


def unsupported(url: URL) -> UserError:
    return UserError(f"{url.get_backend_name()} stores are not supported; {SUPPORTED}", where=SETTING)


def driver_missing(url: URL, error: ImportError) -> UserError:
    name = error.name or str(error)
    return UserError(f"the {url.drivername} driver is not installed (no module {name!r}); {SUPPORTED}", where=SETTING)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def postgres_reason(error: BaseException) -> str:
    """psycopg's message cut to its cause: 'connection to server at "h", port 1 failed: FATAL:
    database "x" does not exist' → 'database "x" does not exist'."""
    line = _first_line(error)
    if " failed: " in line and not line.startswith("failed to resolve"):
        line = line.rsplit(" failed: ", 1)[1]
    line = re.sub(r"^(FATAL|ERROR):\s*", "", line)
    return " ".join(line.split())


def unreachable_postgres(url: URL, error: BaseException) -> UserError:
    where = f"{url.host or 'the local socket'}:{url.port or 5432}"
    return UserError(
        f"cannot connect to PostgreSQL at {where} (database {url.database or '(default)'}): {postgres_reason(error)}",
        where=SETTING,
    )


def sqlite_path(url: URL) -> Path | None:
    """The file an SQLite URL names, or None for an in-memory store."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(database).absolute()


def unopenable_sqlite(url: URL, error: BaseException) -> UserError:
    """Why SQLite could not open its file, said by looking at the file system: SQLite itself only
    says 'unable to open database file'."""
    path = sqlite_path(url)
    reason = _first_line(error)
    if path is None:
        return UserError(f"cannot open the in-memory SQLite store: {reason}", where=SETTING)
    folder = path.parent
    if not folder.exists():
        message = f"folder {folder} does not exist (create it, or fix the path to the store)"
    elif not folder.is_dir():
        message = f"{folder} is a file, not a folder"
    elif path.is_dir():
        message = f"{path} is a folder, not a database file"
    elif "not a database" in reason:
        message = f"{path} is not an SQLite database"
    elif not os.access(folder, os.W_OK | os.X_OK):
        message = f"cannot write in folder {folder} (permission denied)"
    else:
        message = f"cannot open {path}: {reason}"
    return UserError(message, where=SETTING)


def translate_connect_error(url: URL, context: ExceptionContext) -> UserError | None:
    """For SQLAlchemy's ``handle_error`` hook: a new connection that could not be opened becomes
    a UserError; errors on an open connection (a statement, a pre-ping) are left alone, so the
    pool's own recovery and every caller's retry keep working."""
    if (
        context.connection is not None
        or context.execution_context is not None
        or context.is_pre_ping
        or context.sqlalchemy_exception is None
    ):  # not the DBAPI's own error: a bug, keep its trace
        return None
    error = context.original_exception
    if url.get_backend_name() == "sqlite":
        return unopenable_sqlite(url, error)
    return unreachable_postgres(url, error)
