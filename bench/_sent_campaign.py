"""The store the tracking and webhook benchmarks share: one campaign, sent, to ``n`` readers.

Not a test and not part of the package. The rows are bulk-loaded (set-up, not the product's
path), so a 100,000-delivery store takes seconds; only what is then measured goes through the
product.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as c


def bench_settings(state: dict[str, Any]) -> Any:
    """The product's settings for a run's store and folder (a fixed secret and public URL)."""
    from newsletter.config import Settings

    return Settings(
        database_url=state["url"],
        secret_key=c.SECRET,
        public_url=c.PUBLIC_URL,
        outbox_dir=str(Path(state["tmp"]) / "outbox"),
    )


def load_sent_campaign(
    url: str, n: int, *, links: list[tuple[int, str, str]], sent_ago: dt.timedelta, message_id: Callable[[int], str]
) -> tuple[int, dt.datetime]:
    """Migrate the store at ``url`` and fill it: one sent campaign with ``links`` (position, URL,
    kind), ``n`` active readers, delivery ``i`` to reader ``i`` with ``message_id(i)``, all
    sent ``sent_ago``. Returns (the campaign's id, the sent time)."""
    from newsletter.db import make_engine, models, session_scope, upgrade

    engine = make_engine(url)
    upgrade(engine)
    now = dt.datetime.now(dt.timezone.utc)
    with session_scope(engine) as s:
        article = models.Article(slug="bench", title="Bench", source_format="text", content={}, content_hash="0" * 64)
        s.add(article)
        s.flush()
        campaign = models.Campaign(
            article_id=article.id,
            name="bench",
            subject="Bench",
            segment="all",
            template="newsletter",
            status="sent",
            html="<p>x</p>",
            text="x",
        )
        s.add(campaign)
        s.flush()
        s.add_all(
            [models.CampaignLink(campaign_id=campaign.id, position=p, url=link, kind=kind) for p, link, kind in links]
        )
        campaign_id = campaign.id
    engine.dispose()
    c.bulk_load(
        url,
        "subscribers",
        ["id", "email", "first_name", "status", "attributes", "created_at", "updated_at"],
        ((i, f"reader{i}@example.com", "Reader", "active", "{}", now, now) for i in range(1, n + 1)),
    )
    sent = now - sent_ago
    c.bulk_load(
        url,
        "deliveries",
        ["id", "campaign_id", "subscriber_id", "status", "attempts", "created_at", "sent_at", "message_id"],
        ((i, campaign_id, i, "sent", 1, sent, sent, message_id(i)) for i in range(1, n + 1)),
    )
    c.reset_pg_sequences(url, ["subscribers", "deliveries"])
    c.analyze(url)
    return campaign_id, sent


def event_count(url: str) -> int:
    """The rows in the events table: what a run stored is the difference of two counts."""
    from sqlalchemy import func, select

    from newsletter.db import make_engine, models, session_scope

    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            return s.scalar(select(func.count()).select_from(models.Event)) or 0
    finally:
        engine.dispose()
