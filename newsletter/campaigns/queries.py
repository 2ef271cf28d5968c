"""The campaigns room's hot statements: building the ledger, one row per (campaign, subscriber).

Each is named here with why it is shaped as it is; :mod:`.ledger` decides when each runs. The
operator's status moves (``control``, ``status``) are plain ORM statements and stay with their
code. Which store's ``insert`` is asked of :mod:`newsletter.db.dialect` only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, literal, select, text
from sqlalchemy.orm import Session

from newsletter.db import models
from newsletter.db.dialect import upsert_insert

#: The ledger row's columns that a build fills, in the order of :func:`ledger_rows`.
LEDGER_COLUMNS = ("campaign_id", "subscriber_id", "status", "attempts", "created_at")

#: PostgreSQL: the statistics refresh after a large build (``ledger._statistics_outgrown`` says
#: when and why); ANALYZE samples at most 30,000 rows, a fraction of a second.
ANALYZE_DELIVERIES = text("ANALYZE deliveries")

#: PostgreSQL: what the planner believes ``deliveries`` holds (-1: never analysed). Read from
#: the catalogue, free, where a ``count(*)`` would scan the table.
DELIVERIES_ROW_ESTIMATE = text("SELECT reltuples FROM pg_class WHERE oid = 'deliveries'::regclass")


def ledger_rows(campaign_id: int, now: datetime, *conditions: Any) -> Select[*tuple[Any, ...]]:
    """The new ledger rows of a campaign, for the subscribers matching ``conditions``, as a SELECT
    the INSERT reads from. In the order the table gives them (for a bulk-loaded list, their id
    order): an ORDER BY made PostgreSQL sort a million rows on disk first."""
    S = models.Subscriber
    return select(
        literal(campaign_id), S.id, literal("queued"), literal(0), literal(now, type_=models.UTCDateTime)
    ).where(*conditions)


def ledger_inserts(session: Session, rows: Select[*tuple[Any, ...]]) -> tuple[Any, Any]:
    """(plain, guarded): ``INSERT … SELECT`` of ``rows``, without and with ``ON CONFLICT DO NOTHING``.

    A campaign's first build runs the plain one (the unique key still guards it): ``ON CONFLICT
    DO NOTHING`` costs PostgreSQL a speculative insertion per row, about a fifth of a million-row
    build, and is only needed when rows are already there. Both keep the database's own count
    of the rows inserted (SQLAlchemy keeps it only when asked): counting the campaign's rows
    afterwards cost PostgreSQL a quarter of a second per million.
    """
    plain = (
        upsert_insert(session)(models.Delivery)
        .from_select(list(LEDGER_COLUMNS), rows)
        .execution_options(preserve_rowcount=True)
    )
    guarded = plain.on_conflict_do_nothing(index_elements=["subscriber_id", "campaign_id"])
    return plain, guarded


def has_ledger_rows(campaign_id: int) -> Select[*tuple[Any, ...]]:
    """Whether the campaign has any ledger row: one probe of the ``(campaign_id, …)`` key."""
    return select(exists().where(models.Delivery.campaign_id == campaign_id))
