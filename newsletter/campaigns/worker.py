"""``newsletter worker``: drain every sending campaign's ledger, alongside any other workers.

Workers share nothing but the database. On PostgreSQL any number of them, on any hosts, claim
batches with ``FOR UPDATE SKIP LOCKED``; on SQLite they take turns (one writer). A worker that
dies leaves its batch in flight; the others flag it ambiguous when its lease runs out.

``--exit-when-idle`` stops as soon as nothing is queued: rows another worker holds in flight are
named (with the time its lease runs out), not waited for.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, exists, func, or_, select

from newsletter.campaigns.send import dispatch_campaign, finish_if_done, make_throttle, make_transport
from newsletter.config import Settings
from newsletter.db import models, session_scope
from newsletter.delivery.dispatch import DispatchResult, default_worker_id, expire_leases

log = logging.getLogger(__name__)


def sending_campaigns(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        return list(
            session.scalars(
                select(models.Campaign.id).where(models.Campaign.status == "sending").order_by(models.Campaign.id)
            )
        )


def queued_left(engine: Engine) -> bool:
    """Rows still queued in a sending campaign: work this worker could still claim."""
    D = models.Delivery
    with session_scope(engine) as session:
        return bool(
            session.scalar(
                select(
                    exists().where(
                        D.campaign_id == models.Campaign.id, models.Campaign.status == "sending", D.status == "queued"
                    )
                )
            )
        )


@dataclass(frozen=True)
class HeldRows:
    """Rows of a sending campaign in flight under another worker's lease: nothing this worker
    may do with them. If that worker is alive its answers come; if it died they become
    ambiguous at ``lease_until`` and wait for ``newsletter campaign resolve``."""

    campaign_id: int
    worker: str | None
    rows: int
    lease_until: datetime | None

    def describe(self) -> str:
        until = self.lease_until.isoformat(timespec="seconds") if self.lease_until else "an unknown time"
        return (
            f"campaign {self.campaign_id}: {self.rows} row(s) held by worker {self.worker or '?'}'s lease until "
            f"{until}; if that worker died they become ambiguous then (see `newsletter campaign status "
            f"{self.campaign_id}`)"
        )


def held_rows(engine: Engine, worker_id: str) -> list[HeldRows]:
    """Rows in flight in sending campaigns under leases other than ours, per campaign and worker."""
    D = models.Delivery
    with session_scope(engine) as session:
        rows = session.execute(
            select(D.campaign_id, D.claimed_by, func.count(), func.max(D.lease_until))
            .where(
                D.campaign_id == models.Campaign.id,
                models.Campaign.status == "sending",
                D.status == "in_flight",
                or_(D.claimed_by.is_(None), D.claimed_by != worker_id),
            )
            .group_by(D.campaign_id, D.claimed_by)
            .order_by(D.campaign_id)
        ).all()
    return [HeldRows(campaign_id, worker, n, until) for campaign_id, worker, n, until in rows]


@dataclass
class WorkerStats(DispatchResult):
    """The worker's totals, and the rows it left to other workers' leases when it stopped idle."""

    held: list[HeldRows] = field(default_factory=list)


def _add(stats: DispatchResult, result: DispatchResult) -> None:
    for name in ("sent", "failed", "suppressed", "ambiguous", "batches"):
        setattr(stats, name, getattr(stats, name) + getattr(result, name))


def run_worker(
    engine: Engine,
    settings: Settings,
    *,
    exit_when_idle: bool = False,
    stop: threading.Event | None = None,
    worker_id: str | None = None,
) -> WorkerStats:
    """Drain sending campaigns until stopped, or, with ``exit_when_idle``, until nothing is queued.

    An idle worker does not wait for rows in flight under another worker's lease: it could do
    nothing with them (a live worker records its own answers; a dead one's become ambiguous when
    the lease runs out, and those are never resent without an operator). It names them and
    stops; ``stats.held`` lists them.
    """
    stop = stop or threading.Event()
    worker_id = worker_id or default_worker_id()
    stats = WorkerStats()
    transport = make_transport(settings)
    throttle = make_throttle(engine, settings)
    log.info("worker %s started (%s transport)", worker_id, transport.name)
    try:
        while not stop.is_set():
            busy = False
            for campaign_id in sending_campaigns(engine):
                with session_scope(engine) as session:
                    expired = expire_leases(session, campaign_id)
                if expired:
                    log.warning(
                        "campaign %s: %d in-flight row(s) of a dead worker are now ambiguous; decide with "
                        "`newsletter campaign resolve %s --mark-sent | --resend-ambiguous`",
                        campaign_id,
                        expired,
                        campaign_id,
                    )
                result = dispatch_campaign(
                    engine, settings, campaign_id, transport, throttle=throttle, worker_id=worker_id
                )
                finish_if_done(engine, campaign_id)
                busy = busy or result.batches > 0
                _add(stats, result)
            if not busy:
                if exit_when_idle and not queued_left(engine):
                    stats.held = held_rows(engine, worker_id)
                    for held in stats.held:
                        log.debug("nothing left to claim; %s", held.describe())
                    break
                stop.wait(settings.worker_poll_seconds)
    finally:
        transport.close()
    log.info("worker %s stopped: %s", worker_id, stats)
    return stats
