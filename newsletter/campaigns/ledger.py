"""The ledger: one row per (campaign, subscriber), built by one set-based statement.

``INSERT … SELECT`` does the whole segment in the database: no Python loop, no per-row ORM
object, and building twice (a retry, a second scheduler tick) adds nothing because the unique
constraint holds the invariant (a second build skips what is there, ``ON CONFLICT DO
NOTHING``). Suppressed and non-active subscribers are left out here and checked again when
each batch is dispatched.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.audiences import load_segment, segment_condition
from newsletter.db import models
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
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    plain = dialect.insert(models.Delivery).from_select(columns, chosen)
    guarded = plain.on_conflict_do_nothing(index_elements=["subscriber_id", "campaign_id"])
    before = _ledger_size(session, campaign.id)
    if before:
        session.execute(guarded)
    else:
        try:
            with session.begin_nested():
                session.execute(plain)
        except IntegrityError:  # another build got in first: add only what it left out
            before = _ledger_size(session, campaign.id)
            session.execute(guarded)
    # Counted, not taken from rowcount: psycopg reports -1 for this INSERT … SELECT.
    added = _ledger_size(session, campaign.id) - before
    if added >= FRESH_STATISTICS_AFTER and dialect is postgresql:
        # A large ledger written in one statement leaves the planner's statistics describing the
        # table before it; autovacuum catches up only later, and until then each batch claim
        # may be planned as a full scan.
        session.execute(text("ANALYZE deliveries"))
    return added


#: Rows added in one build after which PostgreSQL's statistics are refreshed at once.
FRESH_STATISTICS_AFTER = 50_000


def _ledger_size(session: Session, campaign_id: int) -> int:
    return session.scalar(select(func.count()).select_from(models.Delivery).where(models.Delivery.campaign_id == campaign_id)) or 0


def ledger_counts(session: Session, campaign_id: int) -> dict[str, int]:
    """Rows per delivery status, every status present (zero when empty)."""
    D = models.Delivery
    rows = session.execute(
        select(D.status, func.count()).where(D.campaign_id == campaign_id).group_by(D.status)
    ).all()
    counts = {status: 0 for status in models.DELIVERY_STATUSES}
    counts.update({status: n for status, n in rows})
    return counts
