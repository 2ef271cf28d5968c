"""The typed values behind the compound settings, and their one parser each.

``Settings`` (``newsletter.config``) keeps what the user wrote (``"20:00-09:00"``, ``"mon 08:00"``)
and parses it here once, when it is built, so a bad value stops the command at load with one
line naming its variable, and every room receives a ``QuietHours``, a ``time``, a
``WeeklyTime``, a dict of points or a ``ZoneInfo`` instead of parsing the string again.

This module sits below every room (it imports only the standard library and ``errors``): the
nurture, leads, reports and scheduling rooms re-export what their faces name. It holds the
product's one HH:MM reader (:func:`read_clock`) and its one time-zone lookup (:func:`find_zone`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.errors import UserError

# ASCII digits only: ``\d`` would also take other scripts' digits, which no one means in a config file.
_HHMM = re.compile(r"([0-9]{1,2}):([0-9]{2})")
NO_QUIET = ("", "none", "off")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
POINT_KINDS = ("open", "click", "cta")
DEFAULT_POINTS: Mapping[str, float] = {"open": 1.0, "click": 3.0, "cta": 10.0}


def read_clock(text: str | None) -> time | None:
    """``HH:MM`` or ``H:MM`` on the 24-hour clock, or None: the one clock reader (callers word
    the error, since each names its own variable and example)."""
    match = _HHMM.fullmatch((text or "").strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        return None
    return time(int(match.group(1)), int(match.group(2)))


def find_zone(name: str | None) -> ZoneInfo | None:
    """The IANA zone called ``name``, or None when there is none: the one time-zone lookup."""
    text = (name or "").strip()
    if not text:
        return None
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: a path-like or malformed key
        return None


def zone_named(name: str | None, where: str = "NEWSLETTER_TIMEZONE") -> ZoneInfo:
    """``find_zone`` that refuses an unknown name with one line naming ``where``; empty is UTC."""
    found = find_zone(name or "UTC")
    if found is None:
        raise UserError(f"unknown time zone {name!r} (an IANA name such as Europe/London)", where=where)
    return found


def as_zone(value: str | tzinfo, where: str = "NEWSLETTER_TIMEZONE") -> tzinfo:
    """A zone already looked up passes through; a name is looked up (functions that take either)."""
    return value if isinstance(value, tzinfo) else zone_named(value, where)


@dataclass(frozen=True)
class QuietHours:
    """Local hours without sends, ``start`` inclusive to ``end`` exclusive; may wrap midnight."""

    start: time | None = None
    end: time | None = None

    @classmethod
    def parse(cls, text: str | None, where: str = "NEWSLETTER_QUIET_HOURS") -> QuietHours:
        """``"20:00-09:00"``; empty, ``none`` or ``off`` for no quiet hours."""
        raw = (text or "").strip().lower()
        if raw in NO_QUIET:
            return cls()
        parts = raw.split("-")
        clocks = [read_clock(p) for p in parts] if len(parts) == 2 else []
        start, end = clocks if len(clocks) == 2 else (None, None)
        if start is None or end is None:
            raise UserError(
                f"expected quiet hours as HH:MM-HH:MM (e.g. 20:00-09:00) or 'none', got {text!r}", where=where
            )
        if start == end:
            raise UserError(
                "the quiet hours start and end at the same time; use 'none' for no quiet hours", where=where
            )
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


@dataclass(frozen=True)
class WeeklyTime:
    """A weekday (Monday is 0) and a local time: when the weekly report is due."""

    weekday: int
    at: time


def parse_daily(text: str | None, where: str) -> time:
    """A local time of day, ``HH:MM`` (the daily digest)."""
    clock = read_clock(text)
    if clock is None:
        raise UserError(f"expected a local time as HH:MM, got {text!r}", where=where)
    return clock


def parse_weekly(text: str | None, where: str) -> WeeklyTime:
    """``mon 08:00``: a weekday's first three letters (or more) and a time."""
    parts = (text or "").strip().lower().split()
    if len(parts) != 2 or parts[0][:3] not in DAYS:
        raise UserError(f"expected a weekday and a time such as 'mon 08:00', got {text!r}", where=where)
    clock = read_clock(parts[1])
    if clock is None:
        raise UserError(f"expected a time as HH:MM (24-hour), got {parts[1]!r}", where=where)
    return WeeklyTime(DAYS.index(parts[0][:3]), clock)


def parse_points(text: str | None, where: str = "NEWSLETTER_LEAD_POINTS") -> dict[str, float]:
    """``"open=1,click=3,cta=10"`` → points per kind. A kind left out keeps its default."""
    points = dict(DEFAULT_POINTS)
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in POINT_KINDS:
            raise UserError(
                f"expected kind=points with kind one of {', '.join(POINT_KINDS)}, got {item.strip()!r}", where=where
            )
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"points for {name} must be a number, got {value.strip()!r}", where=where) from None
        if not math.isfinite(number) or number < 0:
            raise UserError(f"points for {name} must be zero or more, got {value.strip()!r}", where=where)
        points[name] = number
    return points
