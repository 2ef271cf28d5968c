"""The scheduler daemon on both stores: jobs persist in the database, fire once, survive a
restart, and a send time that passed beyond the grace period is marked missed, not sent late."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from factories import add_subscribers
from newsletter.campaigns import create_campaign, import_article, parse_send_time
from newsletter.db import models, session_scope
from newsletter.db.models import utcnow
from newsletter.errors import UserError
from newsletter.scheduling import run_scheduler, schedule_campaign
from waiting import sleep_until, wait_until


@pytest.fixture
def campaign_id(engine, settings, seed_article_path, monkeypatch, tmp_path) -> int:
    # The job runs in the daemon and reads settings from the environment, as in production.
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("NEWSLETTER_OUTBOX_DIR", settings.outbox_dir)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("NEWSLETTER_PUBLIC_URL", settings.public_url)
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    add_subscribers(engine, 4)
    with session_scope(engine) as session:
        slug = import_article(session, seed_article_path).row.slug
        return create_campaign(session, settings, article_slug=slug, segment="all").id


class _Started(logging.Handler):
    """Sets an event on APScheduler's "Scheduler started" (logged once its job store is loaded)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "Scheduler started":
            self.event.set()


class Daemon:
    """The real daemon in a thread, stopped through its stop event. ``started()`` waits until
    its scheduler runs (jobs loaded from the store), so a test never guesses with a sleep."""

    def __init__(self, settings):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=run_scheduler, args=(settings, self.stop), daemon=True)
        self._logger = logging.getLogger("apscheduler.scheduler")
        self._started = _Started()

    def __enter__(self):
        self._level = self._logger.level
        self._logger.setLevel(min(self._logger.getEffectiveLevel(), logging.INFO))
        self._logger.addHandler(self._started)
        self.thread.start()
        return self

    def started(self, timeout: float = 30.0) -> bool:
        return self._started.event.wait(timeout)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)
        self._logger.removeHandler(self._started)
        self._logger.setLevel(self._level)
        assert not self.thread.is_alive()


def _status(engine, campaign_id) -> str:
    with session_scope(engine) as session:
        return session.get(models.Campaign, campaign_id).status


def _jobs(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT id FROM apscheduler_jobs")).scalars())


def _sent(engine, campaign_id) -> int:
    with session_scope(engine) as session:
        return session.scalar(
            select(func.count())
            .select_from(models.Delivery)
            .where(models.Delivery.campaign_id == campaign_id, models.Delivery.status == "sent")
        )


def test_job_is_stored_in_the_database(engine, settings, campaign_id):
    when = utcnow() + timedelta(hours=2)
    schedule_campaign(engine, settings, campaign_id, when, "Europe/Berlin")
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM apscheduler_jobs")).scalars().all()
    assert ids == [f"campaign-{campaign_id}"]
    with session_scope(engine) as session:
        campaign = session.get(models.Campaign, campaign_id)
        assert campaign.status == "scheduled" and campaign.schedule_timezone == "Europe/Berlin"
        assert abs((campaign.scheduled_at - when).total_seconds()) < 1


def test_scheduled_campaign_fires_once(engine, settings, campaign_id):
    schedule_campaign(engine, settings, campaign_id, utcnow() + timedelta(seconds=2), "UTC")
    with Daemon(settings):
        assert wait_until(lambda: _status(engine, campaign_id) == "sent")
        assert wait_until(lambda: _jobs(engine) == [])  # a one-off job leaves the store as it fires: no second time
    assert _sent(engine, campaign_id) == 4
    assert len(list((Path(settings.outbox_dir) / f"campaign-{campaign_id}").glob("*.eml"))) == 4


def test_schedule_survives_a_restart(engine, settings, campaign_id):
    schedule_campaign(engine, settings, campaign_id, utcnow() + timedelta(seconds=6), "UTC")
    with Daemon(settings) as daemon:
        assert daemon.started()  # it ran, with the job loaded, and stopped before the send time
    assert _status(engine, campaign_id) == "scheduled" and _jobs(engine) == [f"campaign-{campaign_id}"]
    with Daemon(settings):
        assert wait_until(lambda: _status(engine, campaign_id) == "sent")
    assert _sent(engine, campaign_id) == 4


def test_within_grace_sends_on_start_past_grace_is_missed(engine, settings, campaign_id, seed_article_path):
    late_settings = settings.with_overrides(schedule_grace_seconds=1)
    when = utcnow() + timedelta(seconds=1)
    schedule_campaign(engine, late_settings, campaign_id, when, "UTC")
    # The behaviour under test is wall-clock time: the daemon is "down" until the send time and
    # its 1 s grace have passed (APScheduler judges a misfire on the real clock), so this waits.
    sleep_until(when.timestamp() + 2.5)
    with Daemon(late_settings):
        assert wait_until(lambda: _status(engine, campaign_id) == "missed")
    assert _sent(engine, campaign_id) == 0
    with session_scope(engine) as session:
        assert "not sent late" in session.get(models.Campaign, campaign_id).status_reason

    generous = settings.with_overrides(schedule_grace_seconds=3600)
    with session_scope(engine) as session:
        session.get(models.Campaign, campaign_id).status = "draft"
    when = utcnow() + timedelta(seconds=1)
    schedule_campaign(engine, generous, campaign_id, when, "UTC")
    sleep_until(when.timestamp() + 0.5)  # down past the send time (real time, as above), within the grace
    with Daemon(generous):
        assert wait_until(lambda: _status(engine, campaign_id) == "sent")


def test_send_time_needs_a_zone():
    when, zone = parse_send_time("2030-01-15T09:00", "America/New_York")
    assert when.isoformat() == "2030-01-15T14:00:00+00:00" and zone == "America/New_York"
    when, zone = parse_send_time("2030-07-15T09:00-07:00", None)
    assert when.hour == 16
    with pytest.raises(UserError, match="--tz"):
        parse_send_time("2030-01-15T09:00", None)
    with pytest.raises(UserError, match="IANA"):
        parse_send_time("2030-01-15T09:00", "Mars/Olympus")
    with pytest.raises(UserError, match="ISO 8601"):
        parse_send_time("next tuesday", None)


def test_past_time_is_refused(engine, settings, campaign_id):
    with pytest.raises(UserError, match="in the past"):
        schedule_campaign(engine, settings, campaign_id, utcnow() - timedelta(minutes=1), "UTC")


def test_scheduler_steps_down_when_its_lock_connection_dies(engine, settings, campaign_id):
    if engine.dialect.name != "postgresql":
        pytest.skip("the leadership lock exists on PostgreSQL only")
    daemon = Daemon(settings)
    with daemon:

        def holder() -> int | None:
            with engine.connect() as conn:
                # this test's database only: another run's scheduler on the same server holds its own lock
                return conn.execute(
                    text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())"
                    )
                ).scalar()

        assert wait_until(lambda: holder() is not None)
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder()})
        assert wait_until(lambda: not daemon.thread.is_alive())
