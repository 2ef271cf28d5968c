"""Campaign jobs in the persistent job store, and the function a job runs.

The job store is the source of truth for *when*; the campaign row says *what* and guards
against firing twice: a job only sends a campaign that is still ``scheduled``, and sending is
idempotent anyway (the ledger).
"""

from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from newsletter.campaigns import (
    get_campaign,
    mark_schedule_failed,
    mark_schedule_missed,
    mark_scheduled,
    mark_unscheduled,
    send_campaign,
)
from newsletter.config import Settings, load_settings
from newsletter.db import make_engine, session_scope

log = logging.getLogger(__name__)

JOBS_TABLE = "apscheduler_jobs"


def job_id(campaign_id: int) -> str:
    return f"campaign-{campaign_id}"


def job_store(engine: Engine) -> SQLAlchemyJobStore:
    return SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)


def _with_paused_scheduler(engine: Engine, action) -> None:  # type: ignore[no-untyped-def]
    """Open the job store through a scheduler that never runs jobs, act, and close it.

    APScheduler writes a job to its store only while a scheduler is started; started paused,
    it writes without ever executing anything here. The daemon picks the job up on its next
    wake-up (it wakes every few seconds, see daemon.HEARTBEAT_SECONDS).
    """
    scheduler = BackgroundScheduler(jobstores={"default": job_store(engine)}, timezone="UTC")
    scheduler.start(paused=True)
    try:
        action(scheduler)
    finally:
        scheduler.shutdown(wait=False)


def schedule_campaign(engine: Engine, settings: Settings, campaign_id: int, when: datetime, zone_name: str) -> None:
    """Mark the campaign scheduled and store its job; rescheduling replaces the old job."""
    with session_scope(engine) as session:
        mark_scheduled(session, campaign_id, when, zone_name)

    def add(scheduler: BackgroundScheduler) -> None:
        scheduler.add_job(
            run_campaign_job,
            "date",
            run_date=when,
            args=[campaign_id],
            id=job_id(campaign_id),
            replace_existing=True,
            misfire_grace_time=settings.schedule_grace_seconds,
            coalesce=True,
        )

    _with_paused_scheduler(engine, add)


def unschedule_campaign(engine: Engine, campaign_id: int) -> None:
    def remove(scheduler: BackgroundScheduler) -> None:
        if scheduler.get_job(job_id(campaign_id)):
            scheduler.remove_job(job_id(campaign_id))

    _with_paused_scheduler(engine, remove)
    with session_scope(engine) as session:
        mark_unscheduled(session, campaign_id)


def run_campaign_job(campaign_id: int) -> None:
    """What a fired job runs. Reads settings from the daemon's environment (never from the job)."""
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            status = get_campaign(session, campaign_id).status
        if status != "scheduled":
            log.warning("campaign %s is %s, not scheduled: job skipped", campaign_id, status)
            return
        summary = send_campaign(engine, settings, campaign_id)
        log.info("campaign %s sent: %s", campaign_id, summary.to_dict())
    except Exception as exc:  # a job must leave a trace on the campaign, not only in a log
        log.exception("campaign %s failed", campaign_id)
        with session_scope(engine) as session:
            mark_schedule_failed(session, campaign_id, exc)
    finally:
        engine.dispose()


def mark_missed(engine: Engine, campaign_id: int, grace_seconds: int) -> None:
    with session_scope(engine) as session:
        moved = mark_schedule_missed(session, campaign_id, grace_seconds)
    if moved:  # a state change: said once, at WARNING, when it happens
        log.warning(
            "campaign %s missed its send time (the scheduler was not running within %ss of it); "
            "reschedule it or send it now",
            campaign_id,
            grace_seconds,
        )
