"""Where a campaign stands: its lifecycle status and its ledger, row status by row status.

After a crashed sender the ledger holds rows *in flight* under the dead worker's lease, then
(once it ran out) *ambiguous* rows: the provider may or may not have them. The status says
until when the lease holds, and a campaign with ambiguous rows reads "needs a decision" until
an operator runs ``campaign resolve``: it is not "sent" while nobody knows whether it was.
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.campaigns.create import get_campaign
from newsletter.campaigns.ledger import ledger_counts
from newsletter.db import models
from newsletter.db.models import utcnow
from newsletter.delivery.dispatch import expire_leases
from newsletter.errors import UserError

#: What a campaign with ambiguous rows reads, whatever its lifecycle status: only a person can
#: say whether those recipients got it (``campaign resolve``).
NEEDS_DECISION = "needs_decision"


def resolve_hint(campaign_id: int) -> str:
    return f"newsletter campaign resolve {campaign_id} --mark-sent | --resend-ambiguous"


def _bring_up_to_date(session: Session, campaign: models.Campaign, now: datetime) -> None:
    """What any worker would do on its next pass: in-flight rows whose lease ran out become
    ambiguous, and a sending campaign with nothing queued or in flight is finished. Without a
    worker running, nobody else would, and the campaign would read "sending" forever."""
    expire_leases(session, campaign.id, now)
    if campaign.status == "sending":
        counts = ledger_counts(session, campaign.id)
        if counts["queued"] == 0 and counts["in_flight"] == 0:
            campaign.status, campaign.finished_at = "sent", now
    session.flush()


def in_flight_leases(session: Session, campaign_id: int) -> list[dict[str, object]]:
    """Rows in flight, per worker: how many, and when that worker's lease runs out (after which
    they are ambiguous if its answer never came)."""
    D = models.Delivery
    rows = session.execute(
        select(D.claimed_by, func.count(), func.max(D.lease_until))
        .where(D.campaign_id == campaign_id, D.status == "in_flight")
        .group_by(D.claimed_by)
        .order_by(func.max(D.lease_until))
    ).all()
    return [
        {"worker": worker, "rows": n, "lease_until": until.isoformat(timespec="seconds") if until else None}
        for worker, n, until in rows
    ]


def _ambiguous_reasons(session: Session, campaign_id: int) -> dict[str, int]:
    D = models.Delivery
    rows = session.execute(
        select(D.error, func.count()).where(D.campaign_id == campaign_id, D.status == "ambiguous").group_by(D.error)
    ).all()
    return {error or "no answer recorded": n for error, n in rows}


def campaign_status(session: Session, campaign_id: int, now: datetime | None = None) -> dict[str, object]:
    """Where the campaign stands, for a person or a script.

    ``status`` is the lifecycle status, except that a campaign with ambiguous rows reads
    ``needs_decision`` (its lifecycle status stays in ``lifecycle_status``); ``next_step`` says
    what to do, if anything; ``in_flight_leases`` says until when each worker holds its rows.
    Expired leases are flagged first, as a worker would (see :func:`_bring_up_to_date`).
    """
    now = now or utcnow()
    campaign = get_campaign(session, campaign_id)
    _bring_up_to_date(session, campaign, now)
    counts = ledger_counts(session, campaign_id)
    leases = in_flight_leases(session, campaign_id) if counts["in_flight"] else []
    needs_decision = counts["ambiguous"] > 0
    return {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "subject": campaign.subject,
        "segment": campaign.segment,
        "status": NEEDS_DECISION if needs_decision else campaign.status,
        "lifecycle_status": campaign.status,
        "status_reason": campaign.status_reason,
        "scheduled_at": campaign.scheduled_at.isoformat() if campaign.scheduled_at else None,
        "schedule_timezone": campaign.schedule_timezone,
        "recipients": sum(counts.values()),
        **counts,
        "in_flight_leases": leases,
        "ambiguous_reasons": _ambiguous_reasons(session, campaign_id) if needs_decision else {},
        "next_step": _next_step(campaign.id, needs_decision, leases),
    }


def _next_step(campaign_id: int, needs_decision: bool, leases: list[dict[str, object]]) -> str | None:
    if needs_decision:
        return resolve_hint(campaign_id)
    if leases:
        last = leases[-1]["lease_until"]
        return f"wait: rows in flight become ambiguous at {last} if their worker died; then {resolve_hint(campaign_id)}"
    return None


def parse_send_time(value: str, tz_name: str | None) -> tuple[datetime, str]:
    """An ISO 8601 time with an offset, or a local time plus an IANA zone (``--tz``).

    A naive time without ``--tz`` is refused: "9:00" means different hours to a clinic in
    Portland and its server in Frankfurt, and guessing sends at the wrong one.
    """
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"{value!r} is not an ISO 8601 time such as 2026-12-01T09:00-08:00", where="--at") from None
    zone_name = tz_name
    if tz_name:
        try:
            zone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise UserError(f"{tz_name!r} is not an IANA time zone such as America/Los_Angeles", where="--tz") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=zone)
    elif when.tzinfo is None:
        raise UserError("give an offset (2026-12-01T09:00-08:00) or an IANA zone with --tz", where="--at")
    else:
        zone_name = "UTC" if when.utcoffset() == timezone.utc.utcoffset(None) else str(when.tzinfo)
    when = when.astimezone(timezone.utc)
    return when, zone_name or "UTC"


def check_schedulable(campaign: models.Campaign, when: datetime) -> None:
    """Refuse a time in the past, then a campaign that cannot be scheduled. The command checks
    it before the preflight as well, so a mistyped time is said first, not after the checks."""
    if when <= utcnow():
        raise UserError(f"{when.isoformat()} is in the past; use `newsletter campaign send` to send now", where="--at")
    if campaign.status not in ("draft", "scheduled", "missed"):
        raise UserError(f"is {campaign.status}; only a draft can be scheduled", where=f"campaign {campaign.id}")


def mark_scheduled(session: Session, campaign_id: int, when: datetime, zone_name: str) -> None:
    campaign = get_campaign(session, campaign_id)
    check_schedulable(campaign, when)
    campaign.status = "scheduled"
    campaign.scheduled_at = when
    campaign.schedule_timezone = zone_name
    campaign.status_reason = None


def list_campaigns(session: Session, *, include_nurture: bool = False) -> list[dict[str, object]]:
    """Campaigns newest first, each with the status a person should read: a campaign with
    ambiguous rows reads ``needs_decision`` here too, as in :func:`campaign_status`, so the list
    never calls "sent" what nobody knows was sent. Nurture steps (sent by the scheduler) only
    with ``include_nurture``."""
    C, D = models.Campaign, models.Delivery
    query = select(C).order_by(C.id.desc())
    if not include_nurture:
        query = query.where(C.kind != "nurture")
    campaigns = list(session.scalars(query))
    undecided = set(session.scalars(select(D.campaign_id).where(D.status == "ambiguous").distinct()))
    return [
        {
            "id": c.id,
            "kind": c.kind,
            "status": NEEDS_DECISION if c.id in undecided else c.status,
            "lifecycle_status": c.status,
            "subject": c.subject,
            "segment": c.segment,
            "scheduled_at": c.scheduled_at.isoformat() if c.scheduled_at else None,
        }
        for c in campaigns
    ]
