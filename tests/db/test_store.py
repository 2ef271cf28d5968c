"""The store: migrations match the models, run twice harmlessly (and back down), and SQLite runs
in WAL with foreign keys on; the ledger's uniqueness is enforced by the database itself, and
deleting a subscriber or campaign takes its ledger rows and clears its events' references on
both stores (foreign keys on SQLite, delete triggers on PostgreSQL)."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, insert, select, text
from sqlalchemy.exc import IntegrityError

from factories import add_article, add_campaign, add_subscribers
from newsletter.db import current_revision, head_revision, models, session_scope, upgrade
from newsletter.db.migrate import alembic_config, include_object_for


def test_migrations_match_models(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_object_for(engine.dialect.name)}
        )
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
        article = add_article(session, content_hash="x")
        campaign_id = add_campaign(
            session, article.id, "c", subject="s", status="draft", template="t", html="", text=""
        ).id
        session.execute(insert(models.Delivery).values(campaign_id=campaign_id, subscriber_id=subscriber_id))
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.execute(insert(models.Delivery).values(campaign_id=campaign_id, subscriber_id=subscriber_id))


#: What the claim and the record write to a ledger row (delivery/dispatch.py).
LEDGER_UPDATED_COLUMNS = {
    "status",
    "attempts",
    "batch_key",
    "claimed_by",
    "lease_until",
    "message_id",
    "error",
    "sent_at",
    "updated_at",
}


def test_no_index_of_the_ledger_holds_a_column_its_two_updates_change(engine):
    """The send's two writes per recipient (claim, record) are heap-only updates on PostgreSQL
    only while no index names a column they change (a partial index's condition counts too),
    and only if the page has room for the new version (fillfactor). On SQLite the same rule
    means those updates rewrite the row and nothing else."""
    from sqlalchemy import inspect

    inspector = inspect(engine)
    indexed = set(inspector.get_pk_constraint("deliveries")["constrained_columns"])
    for unique in inspector.get_unique_constraints("deliveries"):
        indexed |= set(unique["column_names"])
    for index in inspector.get_indexes("deliveries"):
        indexed |= set(index["column_names"])
        assert not index.get("dialect_options", {}).get("postgresql_where"), index["name"]
    assert indexed == {"id", "campaign_id", "subscriber_id"}
    assert not indexed & LEDGER_UPDATED_COLUMNS
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'deliveries'")).scalar()
        assert options == [f"fillfactor={models.DELIVERIES_FILLFACTOR}"]


def test_statuses_are_checked_by_the_database(engine):
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.execute(insert(models.Subscriber).values(email="x@example.com", status="vip", attributes={}))


def test_emails_are_unique(engine):
    add_subscribers(engine, 1)
    with pytest.raises(IntegrityError):
        add_subscribers(engine, 1)


def _campaign(session) -> int:
    article = add_article(
        session, slug=f"a{session.scalar(select(text('count(*)')).select_from(models.Article))}", content_hash="x"
    )
    return add_campaign(session, article.id, "c", subject="s", status="draft", template="t", html="", text="").id


def _ledger_with_events(engine, subscriber_ids) -> tuple[int, list[int]]:
    """A campaign with a ledger row and an open event for each subscriber."""
    with session_scope(engine) as session:
        campaign_id = _campaign(session)
        deliveries = []
        for n, subscriber_id in enumerate(subscriber_ids):
            delivery = models.Delivery(campaign_id=campaign_id, subscriber_id=subscriber_id, status="sent")
            session.add(delivery)
            session.flush()
            session.add(
                models.Event(
                    event_key=f"k{campaign_id}-{n}",
                    type="open",
                    campaign_id=campaign_id,
                    delivery_id=delivery.id,
                    subscriber_id=subscriber_id,
                )
            )
            deliveries.append(delivery.id)
    return campaign_id, deliveries


def _events(engine):
    with session_scope(engine) as session:
        E = models.Event
        return session.execute(select(E.campaign_id, E.delivery_id, E.subscriber_id).order_by(E.id)).all()


def test_deleting_a_subscriber_takes_its_ledger_rows_and_keeps_its_events_anonymous(engine):
    kept, erased = add_subscribers(engine, 2)
    campaign_id, (kept_delivery, erased_delivery) = _ledger_with_events(engine, [kept, erased])
    with session_scope(engine) as session:
        session.execute(delete(models.Subscriber).where(models.Subscriber.id == erased))
    with session_scope(engine) as session:
        assert session.scalars(select(models.Delivery.id)).all() == [kept_delivery]
    # The erased reader's event stays counted, pointing at nobody (and at no ledger row).
    assert _events(engine) == [(campaign_id, kept_delivery, kept), (campaign_id, None, None)]


def test_deleting_a_campaign_takes_its_ledger_and_clears_its_events(engine):
    subscriber_ids = add_subscribers(engine, 3)
    gone, _ = _ledger_with_events(engine, subscriber_ids)
    stays, stays_deliveries = _ledger_with_events(engine, subscriber_ids[:1])
    with session_scope(engine) as session:
        session.execute(delete(models.Campaign).where(models.Campaign.id == gone))
    with session_scope(engine) as session:
        assert session.scalars(select(models.Delivery.id)).all() == stays_deliveries
    assert _events(engine) == [(None, None, s) for s in subscriber_ids] + [
        (stays, stays_deliveries[0], subscriber_ids[0])
    ]


def test_downgrade_to_the_first_schema_and_back(engine, db_url):
    """Every revision's downgrade runs, and the upgrade after it brings back the same schema,
    cascades included."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    assert current_revision(engine) == "0001"
    assert upgrade(engine) == ("0001", head_revision())
    test_migrations_match_models(engine)
    test_deleting_a_campaign_takes_its_ledger_and_clears_its_events(engine)


# --- the store file is private (issue 14, hostile item 8) -----------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o000, 0o077])
def test_a_new_sqlite_store_and_its_wal_and_shm_are_0600(tmp_path, umask):
    """newsletter.db, -wal and -shm were created 0644 (world-readable) while every other file
    we write is 0600; they hold every subscriber's address, name and events."""
    import os
    import stat

    from newsletter.db import make_engine

    path = tmp_path / "newsletter.db"
    old = os.umask(umask)
    try:
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        add_subscribers(engine, 3)
        with engine.connect() as conn:  # a connection open: the -wal and -shm files exist
            conn.execute(text("SELECT count(*) FROM subscribers")).scalar()
            files = [path, tmp_path / "newsletter.db-wal", tmp_path / "newsletter.db-shm"]
            modes = {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files}
        engine.dispose()
    finally:
        os.umask(old)
    assert modes == {f.name: "0o600" for f in files}


def test_a_store_removed_while_the_engine_lives_is_made_private_again(tmp_path):
    import os
    import stat

    from newsletter.db import make_engine

    path = tmp_path / "newsletter.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    upgrade(engine)  # a new connection, a new (empty) file
    assert oct(stat.S_IMODE(os.stat(path).st_mode)) == "0o600"
    engine.dispose()


def test_an_existing_store_keeps_its_mode_and_unusual_addresses_are_left_to_sqlite(tmp_path):
    import os
    import stat

    from sqlalchemy.engine import make_url

    from newsletter.db import make_engine
    from newsletter.db.filemode import store_path

    path = tmp_path / "shared.db"
    path.touch()
    os.chmod(path, 0o640)  # an owner's own choice (a backup group) is kept
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    for url in ("sqlite://", "sqlite:///:memory:", "sqlite:///file:x.db?mode=ro&uri=true", "sqlite:///x.db?mode=ro"):
        assert store_path(make_url(url)) is None, url
    memory = make_engine("sqlite://")
    with memory.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    memory.dispose()
