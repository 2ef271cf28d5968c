"""Operator control of a running campaign: pause, resume, cancel, and deciding what to do with
rows whose outcome is unknown (ambiguous) or failed.

Every change is a single guarded UPDATE, so it is safe while workers are sending: a worker
checks the campaign's status before each batch, and rows only move between states a person
chose.
"""

from __future__ import annotations

from sqlalchemy import Engine, update

from newsletter.campaigns.create import get_campaign
from newsletter.campaigns.ledger import ledger_counts
from newsletter.campaigns.send import finish_if_done
from newsletter.db import models, rows_changed, session_scope
from newsletter.db.models import utcnow
from newsletter.delivery.dispatch import expire_leases
from newsletter.errors import UserError

D = models.Delivery


def _require(engine: Engine, campaign_id: int, allowed: set[str], action: str) -> str:
    with session_scope(engine) as session:
        status = get_campaign(session, campaign_id).status
    if status not in allowed:
        raise UserError(
            f"is {status}; cannot {action} it (allowed when {', '.join(sorted(allowed))})",
            where=f"campaign {campaign_id}",
        )
    return status


def _set_status(engine: Engine, campaign_id: int, status: str, reason: str | None = None) -> None:
    with session_scope(engine) as session:
        session.execute(
            update(models.Campaign).where(models.Campaign.id == campaign_id).values(status=status, status_reason=reason)
        )


def pause(engine: Engine, campaign_id: int) -> None:
    """Stop after the batches in flight; nothing queued is sent until ``resume``."""
    _require(engine, campaign_id, {"sending", "scheduled"}, "pause")
    _set_status(engine, campaign_id, "paused", "paused by an operator")


def resume(engine: Engine, campaign_id: int) -> None:
    """Back to sending; the caller (or a worker) then drains the queue."""
    _require(engine, campaign_id, {"paused"}, "resume")
    _set_status(engine, campaign_id, "sending")


def cancel(engine: Engine, campaign_id: int) -> int:
    """Stop for good: rows not yet sent are kept as ``queued`` in a cancelled campaign (never sent)."""
    _require(engine, campaign_id, {"draft", "scheduled", "sending", "paused", "missed"}, "cancel")
    _set_status(engine, campaign_id, "cancelled", "cancelled by an operator")
    with session_scope(engine) as session:
        return ledger_counts(session, campaign_id)["queued"]


def resolve_ambiguous(engine: Engine, campaign_id: int, *, resend: bool) -> int:
    """The operator's word on ambiguous rows: resend them (back to queued) or accept them as sent.

    Rows still in flight past their lease are flagged ambiguous first (a dead worker's, when no
    other worker has looked since), so the decision covers them; a campaign left with nothing
    queued or in flight after ``--mark-sent`` is finished.
    """
    values = (
        {"status": "queued", "claimed_by": None, "batch_key": None, "error": None}
        if resend
        else {"status": "sent", "sent_at": utcnow(), "error": "marked sent by an operator"}
    )
    with session_scope(engine) as session:
        get_campaign(session, campaign_id)
        expire_leases(session, campaign_id)
        moved = rows_changed(
            session,
            update(D)
            .where(D.campaign_id == campaign_id, D.status == "ambiguous")
            .values(updated_at=utcnow(), **values),
        )
        if resend and moved:
            session.execute(
                update(models.Campaign)
                .where(models.Campaign.id == campaign_id)
                .values(status="sending", status_reason=None)
            )
        elif moved:  # sent as far as the throttle's windows are concerned, from now
            session.add(
                models.SendLog(campaign_id=campaign_id, message_id=None, recipients=moved, recorded_at=utcnow())
            )
    if moved and not resend:
        finish_if_done(engine, campaign_id)
    return moved


def retry_failed(engine: Engine, campaign_id: int) -> int:
    """Queue only the failed rows again; the caller drains them."""
    with session_scope(engine) as session:
        campaign = get_campaign(session, campaign_id)
        if campaign.status == "cancelled":
            raise UserError("is cancelled; nothing more is sent from it", where=f"campaign {campaign_id}")
        moved = rows_changed(
            session,
            update(D)
            .where(D.campaign_id == campaign_id, D.status == "failed")
            .values(status="queued", claimed_by=None, batch_key=None, error=None, updated_at=utcnow()),
        )
        if moved:
            campaign.status = "sending"
            campaign.status_reason = None
    return moved
