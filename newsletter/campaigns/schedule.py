"""A scheduled campaign's status moves, for the scheduler (``newsletter.scheduling``).

The scheduler owns *when* (its job store); the campaign row owns *what state*. Every move here
is one guarded ``UPDATE`` in the caller's session (so the caller keeps its transaction): a move
out of ``scheduled`` only happens while the row is still ``scheduled``, which is what stops a
job, the missed-job listener and ``campaign unschedule`` from undoing each other's work.
``mark_scheduled`` (the move into ``scheduled``, with its checks) lives in ``status.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.db import models

__all__ = [
    "ScheduledCampaign",
    "mark_schedule_failed",
    "mark_schedule_missed",
    "mark_unscheduled",
    "scheduled_campaigns",
]

#: ``status_reason`` is a bounded column; a long exception text is cut to fit.
_REASON_LIMIT = 2000


@dataclass(frozen=True)
class ScheduledCampaign:
    """A campaign waiting for its send time: the scheduler checks its job is still there."""

    id: int
    scheduled_at: datetime | None


def scheduled_campaigns(session: Session) -> list[ScheduledCampaign]:
    """Every campaign marked ``scheduled``, as plain rows (the daemon's heartbeat reads them)."""
    C = models.Campaign
    rows = session.execute(select(C.id, C.scheduled_at).where(C.status == "scheduled")).all()
    return [ScheduledCampaign(campaign_id, when) for campaign_id, when in rows]


def mark_unscheduled(session: Session, campaign_id: int) -> None:
    """``scheduled`` → ``draft`` (its job was removed); a campaign already sending is left alone."""
    C = models.Campaign
    session.execute(
        update(C).where(C.id == campaign_id, C.status == "scheduled").values(status="draft", scheduled_at=None)
    )


def mark_schedule_failed(session: Session, campaign_id: int, error: Exception) -> None:
    """→ ``failed`` whatever the status: a fired job that raised leaves its trace on the campaign,
    not only in the daemon's log."""
    C = models.Campaign
    session.execute(
        update(C)
        .where(C.id == campaign_id)
        .values(status="failed", status_reason=f"scheduled send failed: {error}"[:_REASON_LIMIT])
    )


def mark_schedule_missed(session: Session, campaign_id: int, grace_seconds: int) -> bool:
    """``scheduled`` → ``missed`` (the send time passed beyond the grace period with no scheduler
    running: not sent late). True when this call moved it, so the move is announced once."""
    C = models.Campaign
    moved = session.execute(
        update(C)
        .where(C.id == campaign_id, C.status == "scheduled")
        .values(
            status="missed",
            status_reason=f"the scheduler was not running within {grace_seconds}s of the send time; "
            "not sent late. Reschedule or send it now.",
        )
    ).rowcount  # type: ignore[attr-defined]
    return bool(moved)
