"""Cleaning up one value of an imported row: the time zone, the locale, a date, the tags.

Pure functions of the text (no store, no file): the import's rules (``import_rules``) call them
per cell, so the costly ones are cached by value (a list has few distinct zones, locales and tag
cells). The column widths come from the models: PostgreSQL refuses a longer value (and with it
the whole chunk), SQLite would silently keep it; both are wrong, so the row is rejected instead.
"""

from __future__ import annotations

import csv
import re
import zoneinfo
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from newsletter.audiences.names import NAME_MAX_LENGTH
from newsletter.errors import UserError

__all__ = [
    "MAX_LENGTH",
    "TAG_MAX",
    "canonical_locale",
    "canonical_zone",
    "checked_tags",
    "normalise_tag",
    "parse_datetime",
    "split_tags",
]

#: Column widths of the text fields (``models.Subscriber``); a longer value rejects its row.
MAX_LENGTH = {
    "first_name": NAME_MAX_LENGTH,
    "last_name": NAME_MAX_LENGTH,
    "consent_source": 100,
    "consent_text_version": 50,
}
TAG_MAX = 100  # subscriber_tags.tag

_TAG_SPLIT = re.compile(r"[;|,]")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*\Z")
_DATE_HINT = "expected ISO 8601, such as 2024-05-01 or 2024-05-01T09:30:00Z"


def normalise_tag(tag: str) -> str:
    """Tags are compared lowercased with single spaces: ``" Ketamine  Therapy"`` → ``"ketamine therapy"``."""
    return " ".join(tag.split()).lower()


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


@lru_cache(maxsize=4096)
def canonical_zone(value: str) -> str | None:
    """The IANA name as spelled in the zone database (``europe/paris`` → ``Europe/Paris``), or None."""
    name = _zone_names().get(value.lower())
    if name:
        return name
    try:  # no tzdata listing on this system: ask zoneinfo directly
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    return value


@lru_cache(maxsize=1024)
def canonical_locale(value: str) -> str | None:
    """A language tag in its usual case (``en_us`` → ``en-US``, ``zh-hant`` → ``zh-Hant``), or None."""
    value = value.replace("_", "-")
    if len(value) > 35 or not _LOCALE.match(value):
        return None
    parts = value.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        out.append(part.upper() if len(part) == 2 else part.title() if len(part) == 4 else part.lower())
    return "-".join(out)


def parse_datetime(value: str, now: datetime) -> datetime:
    """ISO 8601 date or date-time; no zone means UTC. Raises ValueError with a reason."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a date ({_DATE_HINT})") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    if parsed > now + timedelta(days=1):
        raise ValueError("is in the future")
    return parsed.astimezone(timezone.utc)


@lru_cache(maxsize=4096)  # a list has few distinct tag cells
def split_tags(cell: str) -> tuple[str, ...] | None:
    """The cell's tags, normalised; None if one is too long for the column."""
    if '"' in cell:  # Mailchimp: "ketamine","depression"
        try:
            parts = next(csv.reader([cell], skipinitialspace=True))
        except (csv.Error, StopIteration):
            parts = _TAG_SPLIT.split(cell.replace('"', ""))
    else:
        parts = _TAG_SPLIT.split(cell)
    tags = tuple(tag for tag in (normalise_tag(part) for part in parts) if tag)
    return None if any(len(tag) > TAG_MAX for tag in tags) else tags


def checked_tags(tags: Sequence[str]) -> list[str]:
    """The CLI's ``--tag`` values, normalised; a too long one is the person's mistake, said at once."""
    out = []
    for tag in tags:
        tag = normalise_tag(tag)
        if len(tag) > TAG_MAX:
            raise UserError(f"tag {tag[:20]!r}... is longer than {TAG_MAX} characters", "--tag")
        if tag:
            out.append(tag)
    return out
