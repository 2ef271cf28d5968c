"""The automation tick: what the active scheduler does every few seconds besides campaigns.

Each pass rescores leads and alerts the director of new ones, runs the nurture sequences
(enrol, exit, send what is due in the reader's daytime), and sends the daily digest and the
weekly report once their local time has come. Every part is idempotent across processes and
restarts (notification keys, the ledger's unique constraint), so a tick that runs twice, or
late after a restart, sends nothing twice and still sends what is owed.

One part failing (a mail provider down, a broken sequence file) is logged and the others run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.db.models import utcnow
from newsletter.errors import UserError

log = logging.getLogger(__name__)

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WeeklyTime:
    weekday: int  # Monday is 0
    at: time


def parse_clock(raw: str, where: str) -> time:
    """``HH:MM`` (24-hour)."""
    try:
        hours, minutes = raw.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise UserError(f"expected a time as HH:MM (24-hour), got {raw!r}", where=where) from None


def parse_weekly(raw: str, where: str) -> WeeklyTime:
    """``mon 08:00``: a weekday's first three letters and a time."""
    parts = raw.strip().lower().split()
    if len(parts) != 2 or parts[0][:3] not in _DAYS:
        raise UserError(f"expected a weekday and a time such as 'mon 08:00', got {raw!r}", where=where)
    return WeeklyTime(_DAYS.index(parts[0][:3]), parse_clock(parts[1], where))


def local_zone(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.default_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"unknown time zone {settings.default_timezone!r}", where="NEWSLETTER_TIMEZONE") from None


def weekly_report_due(settings: Settings, now: datetime) -> bool:
    """True from this week's report time (local) until the end of the week: a scheduler that was
    down at 08:00 on Monday still sends it when it comes back, once (the key says which week)."""
    when = parse_weekly(settings.weekly_report_at, "NEWSLETTER_WEEKLY_REPORT_AT")
    local = now.astimezone(local_zone(settings))
    week_start = (local - timedelta(days=local.weekday())).date()
    due = datetime.combine(week_start + timedelta(days=when.weekday), when.at, tzinfo=local.tzinfo)
    return local >= due


@dataclass
class TickReport:
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def check_settings(settings: Settings) -> None:
    """Fail at start-up, naming the variable, rather than on every tick."""
    from newsletter.leads import check_settings as check_lead_settings

    local_zone(settings)
    from newsletter.nurture import QuietHours

    check_lead_settings(settings)  # points, half-life, digest time
    QuietHours.parse(settings.quiet_hours)
    parse_weekly(settings.weekly_report_at, "NEWSLETTER_WEEKLY_REPORT_AT")
    if settings.nurture_tick_seconds <= 0:
        raise UserError("must be a positive number of seconds", where="NEWSLETTER_NURTURE_TICK_SECONDS")


def automation_tick(engine: Engine, settings: Settings, now: datetime | None = None) -> TickReport:
    """One pass; ``now`` is injectable so tests drive it with a controlled clock."""
    from newsletter.leads import leads_tick, send_daily_digest
    from newsletter.nurture import nurture_tick
    from newsletter.reports import send_weekly_report

    now = now or utcnow()
    parts: list[tuple[str, Callable[[], object]]] = [
        ("leads", lambda: leads_tick(engine, settings, now)),
        ("nurture", lambda: nurture_tick(engine, settings, now)),
        ("daily digest", lambda: send_daily_digest(engine, settings, now)),
    ]
    if weekly_report_due(settings, now):
        parts.append(("weekly report", lambda: send_weekly_report(engine, settings, now)))
    report = TickReport()
    for name, run in parts:
        try:
            outcome = run()
        except Exception as error:  # one part failing must not stop the others or the scheduler
            log.exception("automation tick: %s failed", name)
            report.failed[name] = str(error) or type(error).__name__
            continue
        report.ran.append(name)
        errors = getattr(outcome, "errors", None)  # parts that carry on past a bad item say so here
        if errors:
            report.failed[name] = "; ".join(str(e) for e in errors)
    # A heartbeat: what changed (mail sent, a step sent, a part failing) is logged where it happens.
    log.debug("automation tick: ran %s%s", ", ".join(report.ran) or "nothing",
              f"; failed: {report.failed}" if report.failed else "")
    return report
