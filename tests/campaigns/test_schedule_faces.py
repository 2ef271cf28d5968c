"""The faces the scheduler calls (issue 15): a scheduled campaign's status moves on
``campaigns`` (``campaigns/schedule.py``) and the leadership lock's helpers in ``db/leadership.py``,
on real stores. The daemon's end-to-end behaviour is in test_scheduler.py and test_scale_out.py."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

import pytest

from newsletter.campaigns import (
    ScheduledCampaign,
    create_campaign,
    import_article,
    mark_schedule_failed,
    mark_schedule_missed,
    mark_scheduled,
    mark_unscheduled,
    scheduled_campaigns,
)
from newsletter.db import is_postgres, models, session_scope
from newsletter.db.leadership import (
    check_lock_connection,
    release_session_locks,
    try_session_lock,
)
from newsletter.db.models import utcnow


@pytest.fixture
def campaign_id(engine, settings, seed_article_path) -> int:
    with session_scope(engine) as session:
        slug = import_article(session, seed_article_path).row.slug
        return create_campaign(session, settings, article_slug=slug, segment="all").id


def _schedule(engine, campaign_id: int) -> None:
    with session_scope(engine) as session:
        mark_scheduled(session, campaign_id, utcnow() + timedelta(hours=1), "UTC")


def _row(engine, campaign_id: int) -> tuple[str, str | None]:
    with session_scope(engine) as session:
        campaign = session.get(models.Campaign, campaign_id)
        return campaign.status, campaign.status_reason


def test_scheduled_campaigns_are_plain_rows(engine, campaign_id):
    with session_scope(engine) as session:
        assert scheduled_campaigns(session) == []
    _schedule(engine, campaign_id)
    with session_scope(engine) as session:
        rows = scheduled_campaigns(session)
    assert [row.id for row in rows] == [campaign_id] and isinstance(rows[0], ScheduledCampaign)
    assert rows[0].scheduled_at is not None and rows[0].scheduled_at > utcnow()
    assert not any(hasattr(value, "_sa_instance_state") for value in asdict(rows[0]).values())


def test_missed_moves_a_scheduled_campaign_once(engine, campaign_id):
    _schedule(engine, campaign_id)
    with session_scope(engine) as session:
        assert mark_schedule_missed(session, campaign_id, 30) is True
    status, reason = _row(engine, campaign_id)
    assert status == "missed" and reason is not None and "within 30s" in reason and "not sent late" in reason
    with session_scope(engine) as session:  # a second listener or heartbeat: nothing to move, nothing to announce
        assert mark_schedule_missed(session, campaign_id, 30) is False


def test_unschedule_and_missed_leave_a_campaign_that_is_not_scheduled_alone(engine, campaign_id):
    with session_scope(engine) as session:
        session.get(models.Campaign, campaign_id).status = "sending"
    with session_scope(engine) as session:
        mark_unscheduled(session, campaign_id)
        assert mark_schedule_missed(session, campaign_id, 30) is False
    assert _row(engine, campaign_id)[0] == "sending"


def test_unschedule_returns_a_scheduled_campaign_to_draft(engine, campaign_id):
    _schedule(engine, campaign_id)
    with session_scope(engine) as session:
        mark_unscheduled(session, campaign_id)
    with session_scope(engine) as session:
        campaign = session.get(models.Campaign, campaign_id)
        assert (campaign.status, campaign.scheduled_at) == ("draft", None)


def test_a_failed_job_leaves_a_bounded_reason(engine, campaign_id):
    _schedule(engine, campaign_id)
    with session_scope(engine) as session:
        mark_schedule_failed(session, campaign_id, RuntimeError("x" * 5000))
    status, reason = _row(engine, campaign_id)
    assert status == "failed" and reason is not None
    assert reason.startswith("scheduled send failed: xxx") and len(reason) == 2000


@pytest.fixture
def two_connections(engine):  # type: ignore[no-untyped-def]
    """Two connections of their own to the store, as two scheduler processes would hold; each is
    discarded afterwards (a test may have killed one), never returned to the pool."""
    if not is_postgres(engine):
        pytest.skip("the leadership lock exists on PostgreSQL only")
    connections = engine.connect(), engine.connect()
    try:
        yield connections
    finally:
        for connection in connections:
            connection.invalidate()
            connection.close()


def test_the_leadership_lock_is_held_by_one_connection(two_connections):
    first, second = two_connections
    assert try_session_lock(first) is True
    assert try_session_lock(second) is False  # a standby
    check_lock_connection(first)  # alive, and no transaction left open on it
    assert not first.in_transaction() and not second.in_transaction()
    release_session_locks(first)
    assert try_session_lock(second) is True  # the standby takes over
    release_session_locks(second)


def test_a_dead_lock_connection_is_noticed(two_connections):
    holder, killer = two_connections
    assert try_session_lock(holder) is True
    pid = holder.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
    killer.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    killer.commit()
    with pytest.raises(Exception):  # noqa: B017 — any failure: the lock can no longer be trusted
        check_lock_connection(holder)
    assert try_session_lock(killer) is True  # the lock died with its connection
    release_session_locks(killer)
