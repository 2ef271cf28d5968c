"""``newsletter worker``: drain every sending campaign's ledger, alongside any other workers.

Workers share nothing but the database. On PostgreSQL any number of them, on any hosts, claim
batches with ``FOR UPDATE SKIP LOCKED``; on SQLite they take turns (one writer). A worker that
dies leaves its batch in flight; the others flag it ambiguous when its lease runs out.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine, exists, select

from newsletter.campaigns.send import dispatch_campaign, finish_if_done, make_throttle, make_transport
from newsletter.config import Settings
from newsletter.db import models, session_scope
from newsletter.delivery.dispatch import DispatchResult, default_worker_id, expire_leases

log = logging.getLogger(__name__)


def sending_campaigns(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        return list(session.scalars(select(models.Campaign.id).where(models.Campaign.status == "sending")
                                    .order_by(models.Campaign.id)))


def work_left(engine: Engine) -> bool:
    """Rows still queued or in flight in a sending campaign (a dead worker's lease may be pending)."""
    D = models.Delivery
    with session_scope(engine) as session:
        return bool(session.scalar(select(exists().where(
            D.campaign_id == models.Campaign.id, models.Campaign.status == "sending",
            D.status.in_(("queued", "in_flight"))))))


def run_worker(engine: Engine, settings: Settings, *, exit_when_idle: bool = False,
               stop: threading.Event | None = None, worker_id: str | None = None) -> DispatchResult:
    """Drain sending campaigns until stopped (or idle, with ``exit_when_idle``); returns the totals."""
    stop = stop or threading.Event()
    worker_id = worker_id or default_worker_id()
    stats = DispatchResult()
    transport = make_transport(settings)
    throttle = make_throttle(engine, settings)
    log.info("worker %s started (%s transport)", worker_id, transport.name)
    try:
        while not stop.is_set():
            busy = False
            for campaign_id in sending_campaigns(engine):
                with session_scope(engine) as session:
                    expire_leases(session, campaign_id)
                result = dispatch_campaign(engine, settings, campaign_id, transport, throttle=throttle, worker_id=worker_id)
                finish_if_done(engine, campaign_id)
                busy = busy or result.batches > 0
                for field in ("sent", "failed", "suppressed", "ambiguous", "batches"):
                    setattr(stats, field, getattr(stats, field) + getattr(result, field))
            if not busy:
                if exit_when_idle and not work_left(engine):
                    break
                stop.wait(settings.worker_poll_seconds)
    finally:
        transport.close()
    log.info("worker %s stopped: %s", worker_id, stats)
    return stats
