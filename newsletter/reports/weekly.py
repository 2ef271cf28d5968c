"""The director's weekly report by email: last week's newsletters, leads and list, with charts.

Built to survive mail clients, Gmail first: a 600-pixel table layout, every style inline (no
``<style>`` block to be stripped), charts as PNG attached inline and referenced as ``cid:``
(no mail client shows inline SVG; remote images are blocked by default), no script, a text
part with the same figures. The figures are :func:`.trends.trends_report`'s, so the email, the
terminal and the HTML report never disagree.

The week is the ISO week (Monday–Sunday in ``NEWSLETTER_TIMEZONE``) that ended most recently
before ``now``; the scheduler runs this on Monday morning (``NEWSLETTER_WEEKLY_REPORT_AT``), and
``send_weekly_report`` sends it once per week whoever calls it, through ``newsletter.notify``;
a week in which nothing happened is not mailed (settled as skipped, and logged).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.reports.render_html import environment
from newsletter.reports.trends import trends_report, zone

log = logging.getLogger(__name__)

TREND_WEEKS = 12
#: ``cid:`` names of the inline images (the keys of the ``images`` dict).
IMAGES = ("report-funnel", "report-trend", "report-growth")


def reported_week(now: datetime, timezone: str | tzinfo) -> tuple[int, int]:
    """(ISO year, week) of the week that ended most recently before ``now`` in ``timezone``."""
    local = now.astimezone(zone(timezone)) - timedelta(days=7)
    year, week, _ = local.isocalendar()
    return year, week


def notification_key(now: datetime, timezone: str | tzinfo) -> str:
    year, week = reported_week(now, timezone)
    return f"weekly-report:{year}-W{week:02d}"


def _change(now_value: float | None, before: float | None) -> str:
    """ "+3.1 pts" against the week before, in percentage points; empty when either is missing."""
    if now_value is None or before is None:
        return ""
    return f"{100 * (now_value - before):+.1f} pts vs the week before"


def _charts(trends: dict[str, Any], week: dict[str, Any]) -> dict[str, bytes]:
    """The PNGs worth attaching: a chart with nothing to draw (no newsletter in twelve weeks, a
    list nobody joined or left) is left out and the email says so in words."""
    from newsletter.reports import charts

    images = {}
    if not charts.trend_is_empty(trends["weeks"]):
        images["report-trend"] = charts.to_png(charts.trend_chart(trends["weeks"], width=5.6))
    if not charts.growth_is_empty(trends["weeks"]):
        images["report-growth"] = charts.to_png(charts.growth_chart(trends["weeks"], width=5.6))
    if week["campaigns"] and not charts.funnel_is_empty(week["funnel"]):
        images["report-funnel"] = charts.to_png(charts.funnel_chart(week["funnel"], width=5.6))
    return images


def _context(trends: dict[str, Any], settings: Settings) -> dict[str, Any]:
    week, before = trends["weeks"][-1], trends["weeks"][-2] if len(trends["weeks"]) > 1 else None
    tz = settings.zone
    start = datetime.fromisoformat(week["start"]).astimezone(tz)
    last_day = datetime.fromisoformat(week["end"]).astimezone(tz) - timedelta(days=1)
    changes = {
        k: _change(week["rates"][k], before["rates"][k] if before else None) for k in ("opened", "clicked", "cta")
    }
    return {
        "week": week,
        "before": before,
        "trends": trends,
        "brand": settings.brand_name,
        "campaigns": [c for c in trends["campaigns"] if c["week"] == week["week"]],
        "dates": f"{start:%a %d %b} – {last_day:%a %d %b %Y}",
        "changes": changes,
    }


def _subject(context: dict[str, Any]) -> str:
    week = context["week"]
    sent = week["campaigns"]
    what = f"{sent} newsletter{'s' if sent != 1 else ''}" if sent else "no newsletter"
    return (
        f"{context['brand']} weekly report {week['week']}: {what}, {week['leads']['new']} new "
        f"lead{'s' if week['leads']['new'] != 1 else ''}, {week['leads']['booked']} booked"
    )


def _trends(session: Session, settings: Settings, now: datetime) -> dict[str, Any]:
    return trends_report(session, weeks=TREND_WEEKS, now=now, timezone=settings.zone, include_current=False)


def quiet_week(week: dict[str, Any]) -> bool:
    """Nothing happened in ``week`` (a row of the trends report): no newsletter started, no lead
    came or booked, nobody joined or left the list. A report of it would be a page of zeros;
    the first start of a fresh install, whose store has nothing before today, is such a week."""
    growth, leads = week["growth"], week["leads"]
    return not (
        week["campaigns"]
        or leads["new"]
        or leads["booked"]
        or any(growth[k] for k in ("new", "unsubscribed", "bounced", "complained"))
    )


def _render(trends: dict[str, Any], settings: Settings) -> tuple[str, str, str, dict[str, bytes]]:
    context = _context(trends, settings)
    images = _charts(trends, context["week"])
    env = environment()
    html = env.get_template("weekly_email.html.j2").render(**context, images=images)
    text = env.get_template("weekly_email.txt.j2").render(**context)
    return _subject(context), html, text, images


def weekly_report_email(
    session_or_engine: Session | Engine, settings: Settings, now: datetime
) -> tuple[str, str, str, dict[str, bytes]]:
    """(subject, html, text, images): ``images`` maps each ``cid:`` name the HTML uses to its PNG."""
    if isinstance(session_or_engine, Engine):
        with session_scope(session_or_engine) as session:
            return _render(_trends(session, settings, now), settings)
    return _render(_trends(session_or_engine, settings, now), settings)


#: Notification states after which nothing is sent again (``failed`` is retried).
_SETTLED = ("sent", "sending", "ambiguous", "skipped")
QUIET_WEEK = "nothing happened: no newsletter, no new lead or booking, no one joined or left the list"


def send_weekly_report(engine: Engine, settings: Settings, now: datetime) -> bool:
    """Send last week's report to the director once; True when this call sent it.

    ``newsletter.notify`` makes it once per week across schedulers and restarts (its key is the
    reported week); the charts are not even drawn when the key is already settled. A week in
    which nothing happened (:func:`quiet_week`) is not mailed: it is settled as ``skipped`` and
    logged, so the first start of a fresh install mails no report of the week before it. A
    failed send raises ``notify.StaffMailError`` and the next call tries again.
    """
    from newsletter.notify import notification_status, send_staff_mail, skip_staff_mail  # db and config only

    key = notification_key(now, settings.zone)
    if notification_status(engine, key) in _SETTLED:
        return False
    with session_scope(engine) as session:
        trends = _trends(session, settings, now)
    if quiet_week(trends["weeks"][-1]):
        if skip_staff_mail(engine, key=key, kind="weekly_report", to=settings.director_email, reason=QUIET_WEEK):
            log.info("weekly report %s not sent: %s", key.split(":", 1)[1], QUIET_WEEK)
        return False
    subject, html, text, images = _render(trends, settings)
    return bool(
        send_staff_mail(
            engine,
            settings,
            key=key,
            kind="weekly_report",
            to=settings.director_email,
            subject=subject,
            html=html,
            text=text,
            images=images,
        )
    )
