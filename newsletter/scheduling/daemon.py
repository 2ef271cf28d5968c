"""The scheduler daemon: one active instance per database, the rest wait as standbys.

On PostgreSQL the active scheduler holds a session-level advisory lock on a connection of its
own; a standby blocks on ``pg_try_advisory_lock`` polling and takes over the moment the active
one's connection dies. On SQLite there is one machine by definition, and the lock is a no-op.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import Engine

from newsletter.campaigns import scheduled_campaigns
from newsletter.config import Settings
from newsletter.db import ensure_current, is_postgres, make_engine, session_scope
from newsletter.db.leadership import (
    LockHolder,
    check_lock_connection,
    release_session_locks,
    try_session_lock,
)
from newsletter.scheduling.jobs import job_id, job_store, mark_missed
from newsletter.scheduling.periodic import automation_tick, check_settings

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5

#: The daemon's own recurring jobs. Each run is a heartbeat, not news: APScheduler's two INFO
#: lines per run ("Running job …", "… executed successfully") were 141 of 183 lines of a short
#: run. Their parts log what changes (a campaign missed, staff mail sent) themselves.
ROUTINE_JOBS = frozenset({"heartbeat", "automation", "leadership"})
_ROUTINE_STORE = "memory"


class RoutineJobsAtDebug(logging.Filter):
    """Demote APScheduler's INFO records about :data:`ROUTINE_JOBS` to DEBUG.

    A logger filter runs after the level check, so the record is rewritten as DEBUG and passed
    on only when its logger is enabled for DEBUG (``NEWSLETTER_LOG_LEVEL=DEBUG`` shows them all
    again). Campaign jobs keep their INFO lines: a campaign firing is a state change.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not self._routine(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)

    @staticmethod
    def _routine(record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if args and getattr(args[0], "id", None) in ROUTINE_JOBS:  # Running job … / … executed successfully
            return True
        if str(record.msg).startswith("Added job") and args[1:2] == (_ROUTINE_STORE,):
            return True
        return str(record.msg).startswith("Adding job tentatively")  # only the daemon's own jobs, at start


class MigrationChatterAtDebug(RoutineJobsAtDebug):
    """Alembic's "Context impl SQLiteImpl." and "Will assume … DDL." at each look at the store's
    revision (three times at start) say nothing; "Running upgrade …" (a change) stays at INFO."""

    @staticmethod
    def _routine(record: logging.LogRecord) -> bool:
        return str(record.msg).startswith(("Context impl", "Will assume"))


_FILTERS = {
    "apscheduler.executors.default": RoutineJobsAtDebug(),
    "apscheduler.scheduler": RoutineJobsAtDebug(),
    "alembic.runtime.migration": MigrationChatterAtDebug(),
}


def quiet_routine_jobs() -> None:
    """Install the filters above where APScheduler and Alembic log routine work (once each)."""
    for name, chatter in _FILTERS.items():
        logger = logging.getLogger(name)
        if chatter not in logger.filters:
            logger.addFilter(chatter)


def _hold_leadership(engine: Engine, stop: threading.Event, poll: float = 2.0) -> LockHolder | None:
    """Block until this process is the active scheduler; returns the connection holding the lock."""
    if not is_postgres(engine):
        return None
    connection = engine.connect()
    announced = False
    while not stop.is_set():
        if try_session_lock(connection):
            log.info("this scheduler is now active")
            return connection
        if not announced:
            log.info("another scheduler is active; waiting as a standby")
            announced = True
        stop.wait(poll)
    connection.close()
    return None


def reconcile(engine: Engine, settings: Settings, scheduler: BlockingScheduler) -> None:
    """Campaigns marked scheduled whose job vanished (e.g. removed by hand) are flagged missed
    once past their grace period, so nothing waits silently forever."""
    with session_scope(engine) as session:
        rows = scheduled_campaigns(session)
    cutoff = datetime.now(UTC) - timedelta(seconds=settings.schedule_grace_seconds)
    for row in rows:
        if scheduler.get_job(job_id(row.id)) is None and row.scheduled_at is not None and row.scheduled_at < cutoff:
            mark_missed(engine, row.id, settings.schedule_grace_seconds)
    log.debug("heartbeat: %d scheduled campaign(s) checked", len(rows))


def still_leader(lock: LockHolder | None, stop: threading.Event) -> None:
    """If the connection holding the advisory lock is gone, so is the lock: a standby may already
    be active. Step down at once rather than risk firing a campaign twice."""
    if lock is None:
        return
    try:
        check_lock_connection(lock)
    except Exception:  # any failure means the lock can no longer be trusted
        log.error("lost the connection holding the scheduler lock; stepping down")
        stop.set()


def build_scheduler(
    engine: Engine, settings: Settings, lock: LockHolder | None = None, stop: threading.Event | None = None
) -> BlockingScheduler:
    quiet_routine_jobs()
    scheduler = BlockingScheduler(
        jobstores={"default": job_store(engine), "memory": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": settings.schedule_grace_seconds},
        timezone="UTC",
    )

    def on_missed(event: JobExecutionEvent) -> None:
        if event.job_id.startswith("campaign-"):
            mark_missed(engine, int(event.job_id.split("-", 1)[1]), settings.schedule_grace_seconds)

    scheduler.add_listener(on_missed, EVENT_JOB_MISSED)
    # The heartbeat wakes the scheduler so jobs written by other processes (the CLI) are seen.
    scheduler.add_job(
        reconcile,
        "interval",
        seconds=HEARTBEAT_SECONDS,
        args=[engine, settings, scheduler],
        id="heartbeat",
        jobstore="memory",
        replace_existing=True,
    )
    # Leads, nurture sequences, the digest and the weekly report (scheduling.periodic).
    scheduler.add_job(
        automation_tick,
        "interval",
        seconds=settings.nurture_tick_seconds,
        args=[engine, settings],
        id="automation",
        jobstore="memory",
        replace_existing=True,
        next_run_time=datetime.now(UTC),
    )
    if lock is not None and stop is not None:
        scheduler.add_job(
            still_leader,
            "interval",
            seconds=HEARTBEAT_SECONDS,
            args=[lock, stop],
            id="leadership",
            jobstore="memory",
            replace_existing=True,
        )
    return scheduler


def run_scheduler(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run until interrupted (or ``stop`` is set): wait for leadership, then schedule."""
    stop = stop or threading.Event()
    quiet_routine_jobs()
    check_settings(settings)
    engine = make_engine(settings.database_url)
    ensure_current(engine)  # an empty store is created; an out-of-date one stops the daemon in one line
    lock = _hold_leadership(engine, stop)
    if stop.is_set():
        return
    scheduler = build_scheduler(engine, settings, lock, stop)
    watcher = threading.Thread(target=lambda: (stop.wait(), scheduler.shutdown(wait=True)), daemon=True)
    watcher.start()
    try:
        log.info("scheduler running on %s", engine.url.render_as_string(hide_password=True))
        scheduler.start()
    finally:
        _release(lock)
        engine.dispose()


def _release(lock: LockHolder | None) -> None:
    """Give up leadership now. Closing through the pool is not enough: the job store disposes
    the engine on shutdown, and a connection returned to a disposed pool may linger (lock held)."""
    if lock is None:
        return
    try:
        release_session_locks(lock)
    except Exception:  # the connection is already gone, and the lock with it
        log.debug("lock connection already closed")
    finally:
        lock.invalidate()
        lock.close()
