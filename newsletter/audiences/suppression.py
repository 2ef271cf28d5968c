"""The one writer of the suppression list (``suppressions``).

Three things put an address on the list: a person's unsubscribe (``tracking.unsubscribe``), a
provider's bounce, complaint or unsubscribe event (the webhook, through
``tracking.suppression.suppress``) and an import that states an opt-out (``audiences.import_writer``).
All three call :func:`add_suppressions`, so the rule lives in one place: ``INSERT … ON CONFLICT
(email) DO NOTHING``, i.e. the first reason an address was suppressed for is kept and a repeat
(a retried one-click POST, a webhook batch sent twice, the same file imported again) adds
nothing. What else each path changes (the subscriber's status, their queued deliveries, an
event) stays with that path.

Addresses must already be in the store's form (``audiences.normalise_email`` or, for a
provider's, ``audiences.trusted_email``); this module does not look at them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table
from sqlalchemy.orm import Session

from newsletter.db.dialect import for_store, per_dialect
from newsletter.db.models import Suppression

Db = Session | Connection

_SUPPRESSIONS = cast(Table, Suppression.__table__)
#: ``INSERT … ON CONFLICT (email) DO NOTHING RETURNING id``, one per store, built once (SQLAlchemy
#: then reuses its compiled form): the first reason is kept, a repeat adds nothing, and the
#: returned ids count what was added. The room's hot statement that is not in ``queries``,
#: because this module is the table's one writer.
_INSERT = per_dialect(
    lambda insert: (
        insert(_SUPPRESSIONS)
        .on_conflict_do_nothing(index_elements=[_SUPPRESSIONS.c.email])
        .returning(_SUPPRESSIONS.c.id)
    )
)


def add_suppressions(db: Db, rows: Sequence[Mapping[str, Any]]) -> int:
    """Add the rows (``email``, ``reason``, ``source``, ``created_at``, optional ``detail``) to the
    suppression list, in the caller's transaction; an address already there keeps its row.
    Returns how many were added."""
    if not rows:
        return 0
    statement = for_store(_INSERT, db)
    return len(db.execute(statement, list(rows)).all())  # one row: a plain execute; more: one multi-row insert
