"""The scheduler's automation tick: its settings, the weekly report's due time, and one part
failing without stopping the others."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from newsletter.errors import UserError
from newsletter.scheduling.periodic import (
    automation_tick,
    check_settings,
    weekly_report_due,
)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("now", "due"),
    [
        ("2026-11-30 13:59", False),  # Monday 07:59 in Chicago (UTC-6)
        ("2026-11-30 14:00", True),  # Monday 08:00 there
        ("2026-12-06 23:00", True),  # Sunday evening: late, still owed (sent once by its key)
        ("2026-11-29 20:00", True),  # Sunday of the week before: that week's report
        ("2026-11-30 12:00", False),  # Monday 06:00 in Chicago, though past 08:00 in UTC: local time counts
    ],
)
def test_weekly_report_is_due_from_its_local_time(settings, now, due):
    chicago = settings.with_overrides(default_timezone="America/Chicago", weekly_report_at="mon 08:00")
    assert weekly_report_due(chicago, _utc(now)) is due


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("digest_at", "8am", "NEWSLETTER_DIGEST_AT"),
        ("weekly_report_at", "someday 08:00", "NEWSLETTER_WEEKLY_REPORT_AT"),
        ("default_timezone", "Mars/Olympus", "NEWSLETTER_TIMEZONE"),
        ("nurture_tick_seconds", 0.0, "NEWSLETTER_NURTURE_TICK_SECONDS"),
        ("quiet_hours", "late", "NEWSLETTER_QUIET_HOURS"),
        ("lead_points", "open=lots", "NEWSLETTER_LEAD_POINTS"),
    ],
)
def test_bad_settings_name_their_variable(settings, field, value, variable):
    with pytest.raises(UserError) as caught:
        check_settings(settings.with_overrides(**{field: value}))
    assert caught.value.where == variable


def test_one_part_failing_leaves_the_others_running(engine, settings, tmp_path):
    broken = tmp_path / "audiences"
    (broken / "nurture").mkdir(parents=True)
    (broken / "nurture" / "broken.yaml").write_text("steps: [unclosed\n", encoding="utf-8")
    report = automation_tick(
        engine,
        settings.with_overrides(audiences_dir=str(broken), outbox_dir=str(tmp_path / "out")),
        _utc("2026-11-30 15:00"),
    )
    assert "broken.yaml" in report.failed["nurture"]
    assert {"leads", "daily digest"} <= set(report.ran) and "leads" not in report.failed


# --- the scheduler's manners: nothing mailed that says nothing ------------------------------------


def _staff_mail(settings) -> list[str]:  # type: ignore[no-untyped-def]
    from pathlib import Path

    folder = Path(settings.outbox_dir) / "staff"
    return sorted(p.name for p in folder.glob("*.eml")) if folder.exists() else []


def test_a_digest_with_no_lead_in_it_is_not_mailed_and_the_day_is_settled(engine, settings, caplog):
    import logging

    from factories import add_subscribers
    from newsletter.db import session_scope
    from newsletter.leads import create_signup_lead, send_daily_digest
    from newsletter.notify import notification_status

    at_eight = _utc("2026-03-10 08:00")
    with caplog.at_level(logging.INFO, logger="newsletter.leads.notices"):
        assert send_daily_digest(engine, settings, at_eight) is False
        assert send_daily_digest(engine, settings, _utc("2026-03-10 08:00:30")) is False  # the next tick
    assert notification_status(engine, "digest:2026-03-10") == "skipped"
    assert _staff_mail(settings) == []
    said = [r for r in caplog.records if "daily digest" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in said] == [
        (logging.INFO, "daily digest for 2026-03-10 not sent: no new or warm leads")
    ]  # once, not every tick

    add_subscribers(engine, 1)
    with session_scope(engine) as session:
        create_signup_lead(session, "reader0@example.com", now=_utc("2026-03-10 15:00"))
    assert send_daily_digest(engine, settings, _utc("2026-03-10 16:00")) is False  # that day is settled
    assert send_daily_digest(engine, settings, _utc("2026-03-11 08:00")) is True  # in the next day's "new"
    assert _staff_mail(settings) == ["digest-2026-03-11.eml"]


def test_first_start_of_a_fresh_install_mails_no_digest_and_no_report_of_the_week_before(engine, settings, caplog):
    """A store made today with a list and a draft: the first tick on a Monday after 08:00 used to
    mail "0 new, 0 warm" and a weekly report of a week with no newsletter."""
    import logging

    from factories import add_subscribers
    from newsletter.notify import notification_status

    add_subscribers(engine, 5)  # joined today: this week's news, not last week's
    now = _utc("2026-12-07 09:00")  # Monday, past both times (UTC)
    fresh = settings.with_overrides(director_email="director@clinic.example")
    with caplog.at_level(logging.INFO):
        report = automation_tick(engine, fresh, now)
    assert {"daily digest", "weekly report"} <= set(report.ran) and not report.failed
    assert _staff_mail(fresh) == []
    assert notification_status(engine, "weekly-report:2026-W49") == "skipped"
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert (
        "weekly report 2026-W49 not sent: nothing happened: no newsletter, no new lead or booking, "
        "no one joined or left the list" in lines
    )


def test_the_weekly_report_goes_at_its_time_for_a_week_in_which_something_happened(engine, settings):
    """Three people joined on Wednesday of week 49: news enough for Monday's report, even with
    no newsletter (its subject says "no newsletter")."""
    from sqlalchemy import update

    from factories import add_subscribers
    from newsletter.db import models, session_scope

    add_subscribers(engine, 3)
    with session_scope(engine) as session:
        session.execute(update(models.Subscriber).values(created_at=_utc("2026-12-02 10:00")))
    director = settings.with_overrides(director_email="director@clinic.example")
    report = automation_tick(engine, director, _utc("2026-12-07 08:00"))  # Monday 08:00 UTC: week 49's report
    assert "weekly report" in report.ran and not report.failed
    assert _staff_mail(director) == ["weekly-report-2026-W49.eml"]


def test_routine_scheduler_jobs_log_at_debug_and_state_changes_at_info(tmp_path, caplog):
    """The daemon's heartbeat and tick are not news: APScheduler's "Running job …" and "…
    executed successfully" for them come out at DEBUG (two INFO lines every five seconds were
    141 of 183 lines of a short run); a campaign job's stay at INFO."""
    import logging
    import threading
    import time
    from types import SimpleNamespace

    from newsletter.config import Settings
    from newsletter.scheduling import run_scheduler
    from newsletter.scheduling.daemon import quiet_routine_jobs

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'newsletter.db'}",
        secret_key="k",
        outbox_dir=str(tmp_path / "outbox"),
        public_url="https://news.example.test",
        nurture_tick_seconds=2.0,
    )
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="newsletter")
    caplog.set_level(logging.DEBUG, logger="alembic")
    caplog.set_level(logging.DEBUG, logger="apscheduler")  # last: it sets the capturing handler's level too
    runner = threading.Thread(target=run_scheduler, args=(settings,), kwargs={"stop": stop})
    runner.start()
    time.sleep(6.5)  # one heartbeat (5 s) and several ticks (2 s)
    stop.set()
    runner.join(timeout=60)
    assert not runner.is_alive()
    routine = [r for r in caplog.records if r.name.startswith("apscheduler.executors")]
    messages = [r.getMessage() for r in routine]
    assert any("reconcile" in m for m in messages) and any("automation_tick" in m for m in messages), messages
    assert {r.levelname for r in routine} == {"DEBUG"}
    info = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.INFO and not r.getMessage().startswith("Running upgrade")
    ]  # a fresh store is migrated: a change
    assert len(info) <= 6, info  # "scheduler running on …", "Scheduler started", staff mail skipped, shut down
    assert not any(m.startswith(("Context impl", "Will assume", "Running job", "Added job")) for m in info), info

    # At INFO the routine records are dropped, not shown with a DEBUG label; a campaign job's stay.
    quiet_routine_jobs()
    caplog.clear()
    caplog.set_level(logging.INFO, logger="apscheduler")
    executor = logging.getLogger("apscheduler.executors.default")
    executor.info('Running job "%s" (scheduled at %s)', SimpleNamespace(id="heartbeat"), "now")
    executor.info('Running job "%s" (scheduled at %s)', SimpleNamespace(id="campaign-3"), "now")
    assert [(r.levelname, r.args[0].id) for r in caplog.records] == [("INFO", "campaign-3")]
