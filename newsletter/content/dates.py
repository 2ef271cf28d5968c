"""Publication dates as authors and feeds write them.

Month names are matched from our own English table, not ``strptime("%B")``, whose month names
follow the process locale.
"""

from __future__ import annotations

import email.utils
import re
from datetime import date, datetime

_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTH_DAY_YEAR = re.compile(r"([A-Za-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})")
_DAY_MONTH_YEAR = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?\s+([A-Za-z]+)\.?,?\s+(\d{4})")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*")

DATE_EXAMPLES = "'August 7, 2023', 'Aug 7, 2023', '2023-08-07' or an RFC 822 date"


def parse_date(value: str) -> date:
    """Read ``value`` as a date; ``ValueError`` (with a readable message) when it is not one.

    Accepts "August 7, 2023", "Aug 7, 2023", "7 August 2023", "2023-08-07", ISO/RFC 3339
    timestamps (Atom) and RFC 822 dates (RSS). Timestamps keep the date in their own zone:
    the day the author published, not the day in UTC.
    """
    text = value.strip()
    for reader in (_read_iso, _read_month_day_year, _read_day_month_year, _read_rfc822):
        found = reader(text)
        if found is not None:
            return found
    raise ValueError(f"cannot read the date {value.strip()!r} (expected e.g. {DATE_EXAMPLES})")


def _month(name: str) -> int | None:
    name = name.lower()
    if len(name) < 3:
        return None
    for number, full in enumerate(_MONTHS, start=1):
        if full.startswith(name):
            return number
    return None


def _build(year: int, month: int | None, day: int) -> date | None:
    if month is None:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _read_iso(text: str) -> date | None:
    try:
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
        if _ISO_DATETIME.fullmatch(text):
            return datetime.fromisoformat(text).date()
    except ValueError:
        return None
    return None


def _read_month_day_year(text: str) -> date | None:
    match = _MONTH_DAY_YEAR.fullmatch(text)
    if not match:
        return None
    return _build(int(match[3]), _month(match[1]), int(match[2]))


def _read_day_month_year(text: str) -> date | None:
    match = _DAY_MONTH_YEAR.fullmatch(text)
    if not match:
        return None
    return _build(int(match[3]), _month(match[2]), int(match[1]))


def _read_rfc822(text: str) -> date | None:
    if ":" not in text:  # RFC 822 dates carry a time; this keeps stray numbers out
        return None
    try:
        return email.utils.parsedate_to_datetime(text).date()
    except (TypeError, ValueError, IndexError):
        return None
