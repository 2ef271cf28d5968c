"""What ``newsletter demo`` needs of a sent campaign and nothing else does: its sent messages and
its links (to make up readers' opens and clicks), and moving it days into the past (so those
readers' hours have already happened). The campaign and its ledger are this room's rows, so the
demo asks here instead of writing them itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.db import models
from newsletter.db.models import utcnow

__all__ = ["backdate_campaign", "link_kinds", "sent_messages"]


def sent_messages(session: Session, campaign_id: int) -> list[tuple[int, datetime]]:
    """``(delivery id, sent at)`` of each message the campaign sent, in ledger order."""
    D = models.Delivery
    rows = session.execute(
        select(D.id, D.sent_at).where(D.campaign_id == campaign_id, D.status == "sent").order_by(D.id)
    ).all()
    return [(delivery_id, sent_at) for delivery_id, sent_at in rows if sent_at is not None]  # a sent row has its time


def link_kinds(session: Session, campaign_id: int) -> list[tuple[int, str]]:
    """``(position, kind)`` of each tracked link in the campaign (``cta``, ``honeypot``, …)."""
    L = models.CampaignLink
    return [
        (position, kind)
        for position, kind in session.execute(select(L.position, L.kind).where(L.campaign_id == campaign_id)).all()
    ]


def backdate_campaign(session: Session, campaign_id: int, days: int) -> None:
    """Move the campaign's sending ``days`` into the past: its own times and its ledger's (the
    demo's clock, not the ledger's rules)."""
    shift = timedelta(days=days)
    C, D = models.Campaign, models.Delivery
    campaign = session.get(C, campaign_id)
    assert campaign is not None
    session.execute(
        update(C)
        .where(C.id == campaign_id)
        .values(
            started_at=(campaign.started_at or utcnow()) - shift,
            finished_at=(campaign.finished_at or utcnow()) - shift,
            created_at=campaign.created_at - shift,
        )
    )
    rows = session.execute(select(D.id, D.sent_at, D.created_at).where(D.campaign_id == campaign_id)).all()
    if rows:  # row by row: date arithmetic in SQL differs between the two stores
        session.execute(
            update(D),
            [
                {"id": i, "sent_at": sent - shift if sent else None, "created_at": made - shift}
                for i, sent, made in rows
            ],
        )
