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

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.errors import UserError
from newsletter.nurture.sequences import Delay

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
NO_QUIET = ("", "none", "off")


@dataclass(frozen=True)
class QuietHours:
    """Local hours without sends, ``start`` inclusive to ``end`` exclusive; may wrap midnight."""

    start: time | None = None
    end: time | None = None

    @classmethod
    def parse(cls, text: str | None, where: str = "NEWSLETTER_QUIET_HOURS") -> "QuietHours":
        """``"20:00-09:00"``; empty, ``none`` or ``off`` for no quiet hours."""
        raw = (text or "").strip().lower()
        if raw in NO_QUIET:
            return cls()
        parts = [p.strip() for p in raw.split("-")]
        matches = [_HHMM.match(p) for p in parts] if len(parts) == 2 else []
        if len(matches) != 2 or not all(matches):
            raise UserError(f"expected quiet hours as HH:MM-HH:MM (e.g. 20:00-09:00) or 'none', got {text!r}",
                            where=where)
        start, end = (time(int(m.group(1)), int(m.group(2))) for m in matches if m)
        if start == end:
            raise UserError("the quiet hours start and end at the same time; use 'none' for no quiet hours",
                            where=where)
        return cls(start, end)

    @property
    def active(self) -> bool:
        return self.start is not None

    def contains(self, clock: time) -> bool:
        if self.start is None or self.end is None:
            return False
        clock = clock.replace(tzinfo=None, fold=0)
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end

    def __str__(self) -> str:
        if self.start is None or self.end is None:
            return "none"
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def zone(name: str | None, default: str) -> ZoneInfo:
    """The subscriber's IANA zone, or ``default`` when it is missing or unknown."""
    for candidate in (name, default):
        if candidate:
            try:
                return ZoneInfo(candidate.strip())
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return default_zone(default)


def default_zone(default: str, where: str = "NEWSLETTER_TIMEZONE") -> ZoneInfo:
    try:
        return ZoneInfo((default or "UTC").strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"{default!r} is not an IANA time zone (e.g. America/Los_Angeles)", where=where) from None


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
