"""What the public pages and the demo outbox read from campaigns: plain values, no session attached.

The web app used to query these tables itself; it calls these instead (issue 15: callers go
through the rooms' faces), with the same statements it ran before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.db import models


@dataclass(frozen=True)
class WebVersion:
    """A delivery's compiled campaign HTML (placeholders still in it) and its reader's first name."""

    html: str
    first_name: str | None


@dataclass(frozen=True)
class CampaignSent:
    """One line of the outbox's home page: a campaign and how many of its deliveries were sent."""

    id: int
    name: str
    subject: str
    status: str
    sent: int


def web_version_of(session: Session, delivery_id: int) -> WebVersion | None:
    """The campaign HTML and first name behind a delivery's "view in browser" link; ``None`` when
    no such delivery is stored (the page answers 404)."""
    row = session.execute(
        select(models.Campaign.html, models.Subscriber.first_name)
        .join(models.Delivery, models.Delivery.campaign_id == models.Campaign.id)
        .join(models.Subscriber, models.Subscriber.id == models.Delivery.subscriber_id)
        .where(models.Delivery.id == delivery_id)
    ).first()
    return None if row is None else WebVersion(row.html, row.first_name)


def article_content(session: Session, slug: str) -> dict[str, Any] | None:
    """The stored article's content (``content.model.Article.to_dict`` form) by slug; ``None`` if
    there is none. One indexed lookup: the public article page calls this on every view."""
    return session.scalar(select(models.Article.content).where(models.Article.slug == slug))


def campaigns_sent(session: Session) -> list[CampaignSent]:
    """Every campaign, newest first, with its count of sent deliveries (the outbox's home page).
    One grouped outer join, so a campaign with no deliveries reads 0."""
    sent = func.count(models.Delivery.id).filter(models.Delivery.status == "sent")
    rows = session.execute(
        select(
            models.Campaign.id,
            models.Campaign.name,
            models.Campaign.subject,
            models.Campaign.status,
            sent.label("sent"),
        )
        .outerjoin(models.Delivery, models.Delivery.campaign_id == models.Campaign.id)
        .group_by(models.Campaign.id, models.Campaign.name, models.Campaign.subject, models.Campaign.status)
        .order_by(models.Campaign.id.desc())
    ).all()
    return [CampaignSent(r.id, r.name, r.subject, r.status, int(r.sent)) for r in rows]
