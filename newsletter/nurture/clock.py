"""Local time for nurture sends: the recipient's zone, quiet hours, delays across DST.

Everything here is a pure function of its arguments (no clock is read), so the scheduler, the
tests and the simulator get the same answers for the same ``now``.

Wall-clock rules, chosen to be deterministic:

* A delay's days move the local calendar, keeping the local clock time (10:00 stays 10:00
  across a DST change, so that day is 23 or 25 hours long); its hours and minutes are elapsed
  time added after that.
* A local time that does not exist (the hour skipped when clocks spring forward) is read with
  the offset from before the change, so it lands the same amount later: 02:30 on the
  spring-forward night in New York is 03:30 EDT. A local time that happens twice (clocks fall
  back) is its first occurrence. Both are ``zoneinfo``'s ``fold=0`` reading (PEP 495).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone, tzinfo

from newsletter.nurture.sequences import Delay
from newsletter.settings_types import QuietHours, find_zone

__all__ = ["QuietHours", "add_delay", "due_at", "in_daytime", "local_label", "next_allowed", "wall", "zone"]


def zone(name: str | None, default: tzinfo) -> tzinfo:
    """The subscriber's IANA zone, or ``default`` (``settings.zone``) when it is missing or unknown."""
    return find_zone(name) or default


def wall(day: date, clock: time, tz: tzinfo, fold: int = 0) -> datetime:
    """The UTC instant of local ``day`` at ``clock`` (fold=0: see the module docstring)."""
    return datetime.combine(day, clock.replace(tzinfo=None, fold=fold), tz).astimezone(timezone.utc)


def add_delay(anchor: datetime, delay: Delay, tz: tzinfo) -> datetime:
    """``anchor`` + ``delay``: calendar days on the local clock, then elapsed hours/minutes."""
    local = anchor.astimezone(tz)
    moved = wall(local.date() + timedelta(days=delay.days), local.timetz(), tz) if delay.days else anchor
    # In UTC before adding: Python adds to an aware local datetime on the wall clock, not in elapsed time.
    return moved.astimezone(timezone.utc) + timedelta(seconds=delay.seconds)


def next_allowed(moment: datetime, tz: tzinfo, quiet: QuietHours) -> datetime:
    """``moment`` if it is outside the recipient's quiet hours, else when they end (local)."""
    if not quiet.active or quiet.end is None or quiet.start is None:
        return moment.astimezone(timezone.utc)
    local = moment.astimezone(tz)
    if not quiet.contains(local.time()):
        return moment.astimezone(timezone.utc)
    day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        day += timedelta(days=1)  # evening part of a window that wraps midnight: ends tomorrow
    moment = moment.astimezone(timezone.utc)
    end = wall(day, quiet.end, tz)
    if end <= moment:  # inside the repeated hour of a fall-back night: its second occurrence
        end = wall(day, quiet.end, tz, fold=1)
    return end if end > moment else moment


def due_at(anchor: datetime, delay: Delay, tz: tzinfo, quiet: QuietHours) -> datetime:
    """When a step whose delay runs from ``anchor`` may go: the delay, then out of quiet hours."""
    return next_allowed(add_delay(anchor, delay, tz), tz, quiet)


def in_daytime(moment: datetime, tz: tzinfo, quiet: QuietHours) -> bool:
    return not quiet.contains(moment.astimezone(tz).time())


def local_label(moment: datetime, tz: tzinfo) -> str:
    """``Tue 2026-03-10 09:00 EDT``: what a person reads in the simulator and status."""
    local = moment.astimezone(tz)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"
