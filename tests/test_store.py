"""The store: migrations match the models, run twice harmlessly, and SQLite runs in WAL with
foreign keys on; the ledger's uniqueness is enforced by the database itself."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from newsletter.db import current_revision, head_revision, models, session_scope, upgrade
from newsletter.db.migrate import include_object
from factories import add_subscribers


def test_migrations_match_models(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": include_object})
        diff = compare_metadata(context, models.Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(engine):
    assert current_revision(engine) == head_revision()
    assert upgrade(engine) == (head_revision(), head_revision())


def test_sqlite_pragmas(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_one_ledger_row_per_campaign_and_subscriber(engine):
    (subscriber_id,) = add_subscribers(engine, 1)
    with session_scope(engine) as session:
        article = models.Article(slug="a", title="A", source_format="text", content={}, content_hash="x")
        session.add(article)
        session.flush()
        campaign = models.Campaign(article_id=article.id, name="c", subject="s", segment="all", template="t", html="", text="")
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
        session.execute(insert(models.Delivery).values(campaign_id=campaign_id, subscriber_id=subscriber_id))
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.execute(insert(models.Delivery).values(campaign_id=campaign_id, subscriber_id=subscriber_id))


def test_statuses_are_checked_by_the_database(engine):
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.execute(insert(models.Subscriber).values(email="x@example.com", status="vip", attributes={}))


def test_emails_are_unique(engine):
    add_subscribers(engine, 1)
    with pytest.raises(IntegrityError):
        add_subscribers(engine, 1)
