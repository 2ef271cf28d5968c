"""The SQLite store is readable by its owner alone (mode 0600), like every other file we write.

It holds every subscriber's address, name and events. SQLite creates a new database file with
the process's umask (usually 0644: world-readable), and gives its ``-wal``, ``-shm`` and
``-journal`` files the main file's permissions (it sets them with ``fchmod`` when it creates
them, whatever the umask). So it is enough to create the main file ourselves, empty (an empty
file is a valid, empty SQLite database) and 0600, before SQLite opens it: then all of them are
0600. An existing store keeps the mode its owner gave it.

Done just before each new connection (SQLAlchemy's ``do_connect``), so a store file removed
while the engine lives is re-created private too. Anything unusual (an in-memory or URI
database, a read-only open, a missing folder, no permission) is left to SQLite, which says
what is wrong in its own words (db/store_errors.py makes that one line).
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL

STORE_MODE = 0o600


def store_path(url: URL) -> str | None:
    """The file a SQLite URL names, or ``None`` when it names no plain file."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if str(url.query.get("uri", "")).lower() in ("true", "1") or str(url.query.get("mode", "")) in ("ro", "memory"):
        return None
    return database


def create_private(path: str) -> bool:
    """Create ``path`` empty with mode 0600 if it does not exist; ``True`` if this call made it.

    ``fchmod`` after ``open``: ``open``'s mode passes through the umask (a umask of 0o277
    would leave 0400, which SQLite could not write)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STORE_MODE)
    except OSError:  # exists already (the usual case), or SQLite will say why it cannot open it
        return False
    try:
        os.fchmod(fd, STORE_MODE)
    finally:
        os.close(fd)
    return True


def keep_store_private(engine: Engine, url: URL) -> None:
    """Before each new connection of a SQLite ``engine``, create its store file 0600 if absent."""
    path = store_path(url)
    if path is None:
        return

    def before_connect(_dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> None:
        if not os.path.exists(path):
            create_private(path)

    event.listen(engine, "do_connect", before_connect)
