"""Small builders for test rows, written straight through the models (no mocks)."""

from __future__ import annotations

from sqlalchemy import Engine, insert

from newsletter.db import models, session_scope


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
