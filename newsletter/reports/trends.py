"""Across campaigns: weekly trends, best and worst campaigns, segments, list growth and churn.

Weeks are ISO weeks (Monday to Sunday) in the clinic's time zone (``NEWSLETTER_TIMEZONE``). A
campaign belongs to the week it started sending in, with all its engagement, however late it
arrives. Trends are newsletters (``kind = 'newsletter'``); nurture step campaigns are listed
apart with their all-time figures (they send a little every day, a week of theirs says little).

List growth comes from the subscribers' own rows: ``new`` is ``created_at`` in the week;
``unsubscribed``, ``bounced`` and ``complained`` are subscribers whose status is that now and
changed in the week (``status_changed_at``). ``subscribers_at_end`` is the active list at the
end of the week, rebuilt from today's statuses (a subscriber who left after the week counts as
active then). New leads are ``leads.created_at``; bookings are each lead's first move to
``booked`` or ``client`` in ``lead_status_changes``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from newsletter.db import models
from newsletter.db.models import utcnow
from newsletter.errors import UserError
from newsletter.reports.figures import BOOKED_STATUSES, analytics, campaign_figures, funnel, rates, sum_figures
from newsletter.settings_types import as_zone

C = models.Campaign
S = models.Subscriber
LOST = ("unsubscribed", "bounced", "complained")
MAX_WEEKS = 520


def zone(value: str | tzinfo) -> tzinfo:
    """``settings.zone`` as it is; a name (tests, callers holding one) looked up once, naming
    NEWSLETTER_TIMEZONE when unknown."""
    return as_zone(value, "NEWSLETTER_TIMEZONE")


def _zone_name(tz: tzinfo) -> str:
    """The IANA name a report shows (``ZoneInfo.key``)."""
    return str(getattr(tz, "key", tz))


def week_label(moment: datetime, tz: tzinfo) -> str:
    year, week, _ = moment.astimezone(tz).isocalendar()
    return f"{year}-W{week:02d}"


def week_bounds(now: datetime, weeks: int, tz: tzinfo, *, include_current: bool) -> list[tuple[datetime, datetime]]:
    """``weeks`` consecutive [Monday 00:00, next Monday 00:00) in ``tz``, oldest first, as UTC.

    The current (unfinished) week is the last one unless ``include_current`` is false, in which
    case the last is the week that ended most recently (the weekly email's view)."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise UserError(f"must be between 1 and {MAX_WEEKS}", where="--weeks")
    today = now.astimezone(tz).date()
    monday = today - timedelta(days=today.weekday()) - timedelta(weeks=0 if include_current else 1)

    def at(day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)

    return [(at(monday - timedelta(weeks=k)), at(monday - timedelta(weeks=k - 1))) for k in range(weeks - 1, -1, -1)]


def _campaign_row(campaign: C, figures: dict[str, int], tz: tzinfo) -> dict[str, Any]:
    stages = funnel(figures)
    return {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "subject": campaign.subject,
        "segment": campaign.segment,
        "kind": campaign.kind,
        "status": campaign.status,
        "started_at": campaign.started_at.isoformat() if campaign.started_at else None,
        "week": week_label(campaign.started_at, tz) if campaign.started_at else None,
        "funnel": stages,
        "rates": rates(stages),
    }


def _summary(many: list[dict[str, int]]) -> dict[str, Any]:
    stages = funnel(sum_figures(many))
    return {"campaigns": len(many), "funnel": stages, "rates": rates(stages)}


def _growth(session: Session, bounds: list[tuple[datetime, datetime]]) -> list[dict[str, int]]:
    """One statement: per week new, unsubscribed, bounced, complained and the list at the end."""
    columns = []
    for start, end in bounds:
        columns.append(func.count().filter(S.created_at >= start, S.created_at < end))
        for status in LOST:
            columns.append(
                func.count().filter(S.status == status, S.status_changed_at >= start, S.status_changed_at < end)
            )
        columns.append(
            func.count().filter(
                S.created_at < end, or_(S.status == "active", S.status.in_(LOST) & (S.status_changed_at >= end))
            )
        )
    row = session.execute(select(*columns)).one()
    out = []
    for k in range(len(bounds)):
        new, unsubscribed, bounced, complained, at_end = row[5 * k : 5 * k + 5]
        out.append(
            {
                "new": new,
                "unsubscribed": unsubscribed,
                "bounced": bounced,
                "complained": complained,
                "net": new - unsubscribed - bounced - complained,
                "subscribers_at_end": at_end,
            }
        )
    return out


def _leads(session: Session, bounds: list[tuple[datetime, datetime]]) -> list[dict[str, int]]:
    Lead, Change = models.Lead, models.LeadStatusChange
    first_booked = (
        select(Change.lead_id, func.min(Change.changed_at).label("at"))
        .where(Change.to_status.in_(BOOKED_STATUSES))
        .group_by(Change.lead_id)
        .subquery()
    )
    new = session.execute(
        select(*(func.count().filter(Lead.created_at >= a, Lead.created_at < b) for a, b in bounds))
    ).one()
    booked = session.execute(
        select(*(func.count().filter(first_booked.c.at >= a, first_booked.c.at < b) for a, b in bounds))
    ).one()
    return [{"new": new[k], "booked": booked[k]} for k in range(len(bounds))]


def _best_and_worst(rows: list[dict[str, Any]], top: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """By CTA rate; campaigns with nothing delivered (or sent) have no rate and are left out.
    With few campaigns the two lists never share one."""
    ranked = sorted(
        (r for r in rows if r["rates"]["cta"] is not None),
        key=lambda r: (-r["rates"]["cta"], -r["funnel"]["delivered"], r["campaign_id"]),
    )
    k = min(top, len(ranked) // 2) if len(ranked) > 1 else len(ranked)
    return ranked[:k], (ranked[len(ranked) - k :][::-1] if len(ranked) > 1 else [])


def trends_report(
    session: Session,
    *,
    weeks: int = 12,
    now: datetime | None = None,
    timezone: str | tzinfo = "UTC",
    include_current: bool = True,
    top: int = 3,
) -> dict[str, Any]:
    """The figures behind ``newsletter report`` (no campaign id) and the weekly email;
    ``timezone`` is ``settings.zone`` or an IANA name."""
    tz = zone(timezone)
    now = now or utcnow()
    analytics(session)
    bounds = week_bounds(now, weeks, tz, include_current=include_current)
    start, end = bounds[0][0], bounds[-1][1]
    newsletters = list(
        session.scalars(
            select(C)
            .where(C.kind == "newsletter", C.started_at >= start, C.started_at < end)
            .order_by(C.started_at, C.id)
        )
    )
    nurture = list(session.scalars(select(C).where(C.kind == "nurture", C.started_at.is_not(None)).order_by(C.id)))
    figures = campaign_figures(session, [c.id for c in newsletters + nurture])
    rows = [_campaign_row(c, figures[c.id], tz) for c in newsletters]
    growth, leads = _growth(session, bounds), _leads(session, bounds)
    week_rows = []
    for k, (a, b) in enumerate(bounds):
        inside = [figures[c.id] for c in newsletters if c.started_at is not None and a <= c.started_at < b]
        week_rows.append(
            {
                "week": week_label(a, tz),
                "start": a.isoformat(),
                "end": b.isoformat(),
                **_summary(inside),
                "growth": growth[k],
                "leads": leads[k],
            }
        )
    segments = sorted({c.segment for c in newsletters})
    best, worst = _best_and_worst(rows, top)
    totals_growth = {
        key: sum(w["growth"][key] for w in week_rows) for key in ("new", "unsubscribed", "bounced", "complained", "net")
    }
    return {
        "period": {
            "weeks": weeks,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "timezone": _zone_name(tz),
            "first_week": week_rows[0]["week"],
            "last_week": week_rows[-1]["week"],
            "generated_at": now.isoformat(),
        },
        "totals": {
            **_summary([figures[c.id] for c in newsletters]),
            "growth": totals_growth,
            "leads": {key: sum(w["leads"][key] for w in week_rows) for key in ("new", "booked")},
            "active_subscribers": session.scalar(select(func.count()).select_from(S).where(S.status == "active")),
        },
        "weeks": week_rows,
        "campaigns": rows,
        "best": best,
        "worst": worst,
        "by_segment": [
            {"segment": seg, **_summary([figures[c.id] for c in newsletters if c.segment == seg])} for seg in segments
        ],
        "nurture": [_campaign_row(c, figures[c.id], tz) for c in nurture],
    }
