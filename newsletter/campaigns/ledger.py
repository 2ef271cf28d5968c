"""The ledger: one row per (campaign, subscriber), built by one set-based statement.

``INSERT … SELECT`` does the whole segment in the database: no Python loop, no per-row ORM
object, and building twice (a retry, a second scheduler tick) adds nothing because the unique
constraint holds the invariant (a second build skips what is there, ``ON CONFLICT DO
NOTHING``). Suppressed and non-active subscribers are left out here and checked again when
each batch is dispatched.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, func, literal, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.audiences import load_segment, segment_condition
from newsletter.db import models
from newsletter.db.dialect import is_postgres, upsert_insert
from newsletter.db.models import utcnow


def build_ledger(session: Session, campaign: models.Campaign, audiences_dir: str | None, now: datetime | None = None) -> int:
    """Materialise the campaign's ledger; returns the number of rows added by this call.

    A campaign's first build is a plain ``INSERT … SELECT`` (the unique key still guards it);
    ``ON CONFLICT DO NOTHING`` costs PostgreSQL a speculative insertion per row, about a fifth
    of a million-row build, and is only needed when rows are already there.
    """
    now = now or utcnow()
    segment = load_segment(campaign.segment, audiences_dir)
    S = models.Subscriber
    # Subscribers in the order the table gives them (for a bulk-loaded list, their id order):
    # an ORDER BY made PostgreSQL sort a million rows on disk first.
    chosen = (select(literal(campaign.id), S.id, literal("queued"), literal(0), literal(now, type_=models.UTCDateTime))
              .where(segment_condition(segment, now), models.sendable()))
    columns = ["campaign_id", "subscriber_id", "status", "attempts", "created_at"]
    # The database's own count of the rows inserted (SQLAlchemy keeps it only when asked): counting
    # the campaign's rows afterwards cost PostgreSQL a quarter of a second per million.
    plain = upsert_insert(session)(models.Delivery).from_select(columns, chosen).execution_options(preserve_rowcount=True)
    guarded = plain.on_conflict_do_nothing(index_elements=["subscriber_id", "campaign_id"])
    if _has_rows(session, campaign.id):
        added = session.execute(guarded).rowcount
    else:
        try:
            with session.begin_nested():
                added = session.execute(plain).rowcount
        except IntegrityError:  # another build got in first: add only what it left out
            added = session.execute(guarded).rowcount
    if is_postgres(session) and _statistics_outgrown(session, added):
        session.execute(text("ANALYZE deliveries"))
    return added


#: Fewer rows than one batch never change a plan worth refreshing the statistics for.
FRESH_STATISTICS_AFTER = 1_000


def _statistics_outgrown(session: Session, added: int) -> bool:
    """Whether this build made PostgreSQL's picture of ``deliveries`` wrong enough to matter.

    A ledger written in one statement leaves the statistics describing the table before it, and
    autovacuum catches up only a minute or more later. Until then the planner takes the new rows
    for a handful: on a fresh store it scanned the whole table for every batch's record (``id =
    ANY(array)`` tested row by row), 1.3 s a batch at 20,000 recipients and growing with the
    ledger. So the statistics are refreshed whenever a build adds at least a batch and more than
    a tenth of the rows they know of (never analysed: ``reltuples`` is -1); an ANALYZE samples
    at most 30,000 rows, a fraction of a second once per campaign.
    """
    if added < FRESH_STATISTICS_AFTER:
        return False
    known = session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'deliveries'::regclass"))
    return known is None or known < 0 or added > 0.1 * known


def _has_rows(session: Session, campaign_id: int) -> bool:
    return bool(session.scalar(select(exists().where(models.Delivery.campaign_id == campaign_id))))


def ledger_counts(session: Session, campaign_id: int) -> dict[str, int]:
    """Rows per delivery status, every status present (zero when empty)."""
    D = models.Delivery
    rows = session.execute(
        select(D.status, func.count()).where(D.campaign_id == campaign_id).group_by(D.status)
    ).all()
    counts = {status: 0 for status in models.DELIVERY_STATUSES}
    counts.update({status: n for status, n in rows})
    return counts
