"""Retention: after a while an event keeps what it counts for, not who or what sent it.

:func:`prune_event_details` clears ``ip_prefix``, ``user_agent`` and ``data`` (the provider's
raw event, a click's position, a doubt) of events older than a number of days. Type, time,
campaign, delivery, subscriber, link and the human/machine verdict stay, so every figure of
:func:`newsletter.reports.campaign_report` is the same before and after, except the count of
doubted clicks (``clicks.uncertain``), which lives in ``data``.

Run it from cron or the scheduler: ``newsletter events prune [--days N]`` (default
``NEWSLETTER_EVENT_RETENTION_DAYS``, 180).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import null, or_, select, update
from sqlalchemy.orm import Session

from newsletter.db.models import Event, utcnow

PRUNE_CHUNK = 10_000


def prune_event_details(
    session: Session, older_than_days: int, *, now: datetime | None = None, chunk: int = PRUNE_CHUNK
) -> int:
    """Null the raw details of events older than ``older_than_days``; returns rows pruned.

    Works in chunks of ids so a first run over a large table does not hold one huge
    transaction's locks on PostgreSQL; the caller commits (each chunk is flushed as it goes).
    Repeating it finds nothing to do.
    """
    if older_than_days < 0:
        raise ValueError("older_than_days must be zero or more")
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    has_details = or_(Event.ip_prefix.is_not(None), Event.user_agent.is_not(None), Event.data.is_not(None))
    total = 0
    last_id = 0
    while True:
        ids = list(
            session.scalars(
                select(Event.id)
                .where(Event.occurred_at < cutoff, Event.id > last_id, has_details)
                .order_by(Event.id)
                .limit(chunk)
            )
        )
        if not ids:
            return total
        session.execute(
            update(Event)
            .where(Event.id.in_(ids))
            .values(ip_prefix=None, user_agent=None, data=null())
            .execution_options(synchronize_session=False)
        )
        total += len(ids)
        last_id = ids[-1]
