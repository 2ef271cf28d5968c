"""Small builders for test rows, written straight through the models (no mocks)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from newsletter.db import models, session_scope
from newsletter.render import Brand


def add_subscribers(
    engine: Engine,
    count: int,
    *,
    domain: str = "example.com",
    status: str = "active",
    tags: tuple[str, ...] = (),
    start: int = 0,
) -> list[int]:
    """Insert ``count`` subscribers ``reader{n}@domain`` with first names; returns their ids."""
    rows = [
        {
            "email": f"reader{n}@{domain}",
            "first_name": f"Reader{n}",
            "last_name": "Test",
            "status": status,
            "attributes": {},
            "timezone": "America/Los_Angeles",
            "created_at": models.utcnow(),
            "updated_at": models.utcnow(),
        }
        for n in range(start, start + count)
    ]
    with session_scope(engine) as session:
        ids = list(session.scalars(insert(models.Subscriber).returning(models.Subscriber.id), rows))
        if tags:
            session.execute(insert(models.SubscriberTag), [{"subscriber_id": i, "tag": t} for i in ids for t in tags])
    return ids


def suppress(engine: Engine, email: str, reason: str = "unsubscribed") -> None:
    with session_scope(engine) as session:
        session.add(models.Suppression(email=email, reason=reason, source="test"))


def add_article(
    session: Session,
    *,
    slug: str = "a",
    title: str = "A",
    content: dict[str, Any] | None = None,
    content_hash: str = "0" * 64,
) -> models.Article:
    """Add an article (flushed, so its id is set): campaigns need one to hang from."""
    article = models.Article(
        slug=slug, title=title, source_format="text", content=content or {}, content_hash=content_hash
    )
    session.add(article)
    session.flush()
    return article


def add_campaign(
    session: Session,
    article_id: int,
    name: str,
    *,
    subject: str | None = None,
    status: str = "sent",
    template: str = "newsletter",
    html: str = "<p>x</p>",
    text: str = "x",
) -> models.Campaign:
    """Add a campaign to segment "all" (flushed, so its id is set); ``subject`` defaults to ``name``."""
    campaign = models.Campaign(
        article_id=article_id,
        name=name,
        subject=name if subject is None else subject,
        segment="all",
        template=template,
        status=status,
        html=html,
        text=text,
    )
    session.add(campaign)
    session.flush()
    return campaign


def roots_brand(**changes: str) -> Brand:
    """The seed clinic's brand, as the rendering tests send under; ``changes`` replace fields."""
    fields = {
        "brand_name": "Roots Mental Wellness",
        "from_name": "Roots Mental Wellness",
        "from_email": "newsletter@rootsmentalwellness.example",
        "reply_to": "hello@rootsmentalwellness.example",
        "postal_address": "Roots Mental Wellness, 100 Example Avenue, Portland, OR 97201, USA",
        "booking_url": "https://rootsmentalwellness.example/book",
        "website_url": "https://rootsmentalwellness.example",
        "public_url": "https://news.example.test",
    }
    fields.update(changes)
    return Brand(**fields)  # type: ignore[arg-type]


def deliveries_by_email(engine: Engine, campaign_id: int, column: Any = models.Delivery.status) -> dict[str, Any]:
    """A campaign's ledger as {subscriber email: ``column`` of the delivery row} (its status unless told)."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(models.Subscriber.email, column)
            .join(models.Delivery, models.Delivery.subscriber_id == models.Subscriber.id)
            .where(models.Delivery.campaign_id == campaign_id)
        ).all()
    return {email: value for email, value in rows}
