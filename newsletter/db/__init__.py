"""The SQL store: engines, sessions, models and migrations.

Public face: ``make_engine``, ``session_scope``, ``models``; ``dialect_name``/``is_postgres``
(``db.dialect`` holds the rest of "which store": upserts, id lists); for the schema, ``ensure_current``
(what every command calls: an empty store is created, an out-of-date one refused in one line),
``upgrade`` (only ``newsletter init`` / ``db upgrade``) and ``schema_status`` (``db status``).
"""

from newsletter.db import models
from newsletter.db.dialect import dialect_name, is_postgres
from newsletter.db.engine import (
    make_engine,
    normalise_url,
    rows_changed,
    session_factory,
    session_scope,
)
from newsletter.db.migrate import (
    SchemaStatus,
    current_revision,
    ensure_current,
    head_revision,
    schema_status,
    upgrade,
)

__all__ = [
    "SchemaStatus",
    "current_revision",
    "dialect_name",
    "ensure_current",
    "head_revision",
    "is_postgres",
    "make_engine",
    "models",
    "normalise_url",
    "rows_changed",
    "schema_status",
    "session_factory",
    "session_scope",
    "upgrade",
]
