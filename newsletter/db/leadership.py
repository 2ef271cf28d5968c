"""The scheduler's leadership lock: a PostgreSQL session-level advisory lock, held on a
connection of its own for as long as the process leads.

Why in ``db`` and not in ``scheduling``: the lock is store machinery with no campaign meaning
(like the schema lock in ``migrate.py``), it exists on one dialect only, and ``db`` is where the
house answers "which dialect". The scheduler keeps the policy (poll, announce, step down); these
helpers are the three statements it needs, each committed at once so the connection never sits
idle in a transaction while it holds the lock.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

__all__ = ["SCHEDULER_LOCK_KEY", "LockHolder", "check_lock_connection", "release_session_locks", "try_session_lock"]

#: The connection that holds the lock: the scheduler keeps it and hands it back to these helpers.
LockHolder = Connection

#: One active scheduler per database. Keys in use: this one and ``migrate.SCHEMA_LOCK_KEY``.
SCHEDULER_LOCK_KEY = 0x4E4C5354  # "NLST"


def try_session_lock(connection: Connection, key: int = SCHEDULER_LOCK_KEY) -> bool:
    """Take the lock if free (never waits). Session-level: held until released or the connection dies."""
    taken = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
    connection.commit()
    return taken


def check_lock_connection(connection: Connection) -> None:
    """Raise if the connection holding the lock is gone (and the lock with it)."""
    connection.execute(text("SELECT 1"))
    connection.commit()


def release_session_locks(connection: Connection) -> None:
    """Release every session-level advisory lock this connection holds; raises if it is gone."""
    connection.execute(text("SELECT pg_advisory_unlock_all()"))
    connection.commit()
