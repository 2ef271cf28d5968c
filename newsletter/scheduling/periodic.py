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
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.errors import UserError
from newsletter.settings_types import WeeklyTime

__all__ = ["TickReport", "WeeklyTime", "automation_tick", "check_settings", "weekly_report_due"]

log = logging.getLogger(__name__)


def weekly_report_due(settings: Settings, now: datetime) -> bool:
    """True from this week's report time (local) until the end of the week: a scheduler that was
    down at 08:00 on Monday still sends it when it comes back, once (the key says which week)."""
    when = settings.weekly_report_time
    local = now.astimezone(settings.zone)
    week_start = (local - timedelta(days=local.weekday())).date()
    due = datetime.combine(week_start + timedelta(days=when.weekday), when.at, tzinfo=local.tzinfo)
    return local >= due


@dataclass
class TickReport:
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def check_settings(settings: Settings) -> None:
    """Fail at start-up, naming the variable, rather than on every tick. (The time zone, quiet
    hours, digest and report times and lead points were parsed when ``settings`` was built.)"""
    from newsletter.leads import check_settings as check_lead_settings

    check_lead_settings(settings)  # the half-life
    if settings.nurture_tick_seconds <= 0:
        raise UserError("must be a positive number of seconds", where="NEWSLETTER_NURTURE_TICK_SECONDS")


def automation_tick(engine: Engine, settings: Settings, now: datetime | None = None) -> TickReport:
    """One pass; ``now`` is injectable so tests drive it with a controlled clock."""
    from newsletter.leads import leads_tick, send_daily_digest
    from newsletter.nurture import nurture_tick
    from newsletter.reports import send_weekly_report

    now = now or datetime.now(UTC)
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
    log.debug(
        "automation tick: ran %s%s",
        ", ".join(report.ran) or "nothing",
        f"; failed: {report.failed}" if report.failed else "",
    )
    return report
