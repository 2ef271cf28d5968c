"""Where a campaign stands: its lifecycle status and its ledger, row status by row status."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from newsletter.campaigns.create import get_campaign
from newsletter.campaigns.ledger import ledger_counts
from newsletter.db import models
from newsletter.db.models import utcnow
from newsletter.errors import UserError


def campaign_status(session: Session, campaign_id: int) -> dict[str, object]:
    campaign = get_campaign(session, campaign_id)
    counts = ledger_counts(session, campaign_id)
    return {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "subject": campaign.subject,
        "segment": campaign.segment,
        "status": campaign.status,
        "status_reason": campaign.status_reason,
        "scheduled_at": campaign.scheduled_at.isoformat() if campaign.scheduled_at else None,
        "schedule_timezone": campaign.schedule_timezone,
        "recipients": sum(counts.values()),
        **counts,
    }


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
