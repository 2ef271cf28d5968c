"""The SQL store: engines, sessions, models and migrations.

Public face: ``make_engine``, ``session_scope``, ``upgrade`` (create or migrate), ``models``.
"""

from newsletter.db import models
from newsletter.db.engine import is_postgres, make_engine, normalise_url, session_factory, session_scope
from newsletter.db.migrate import current_revision, head_revision, upgrade

__all__ = [
    "models",
    "make_engine",
    "normalise_url",
    "is_postgres",
    "session_factory",
    "session_scope",
    "upgrade",
    "current_revision",
    "head_revision",
]
