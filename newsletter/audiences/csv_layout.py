"""The CSV layouts an import recognises, told from the header: which column holds which field.

Two layouts (names compared through :func:`attribute_key`, so ``First Name`` matches ``first_name``):

* **ours**: ``email,first_name,last_name,timezone,locale,tags,consent_source,consent_at,
  consent_text_version``; only ``email`` is required. ``tags`` are separated by ``;``, ``|``
  or ``,``. Any other column is kept in ``attributes`` under its normalised name
  (``Home State`` → ``home_state``), which is the name segment rules use.
* **Mailchimp's audience export** (``Email Address``, ``First Name``, ``Last Name``, ...,
  ``TAGS``): ``CONFIRM_TIME`` (else ``OPTIN_TIME``) becomes the consent date, ``TIMEZONE`` the
  time zone, ``TAGS`` (``"ketamine","depression"``) the tags, ``MEMBER_RATING``/``CC``/``REGION``
  become the attributes ``member_rating``/``country``/``region``. Mailchimp's internal ids,
  IPs, coordinates and bookkeeping columns are dropped, and so is ``NOTES``: free-text staff
  notes at a clinic can hold health information, which has no place in a mailing list. A row
  with ``UNSUB_TIME`` or ``CLEAN_TIME`` (Mailchimp's unsubscribed and cleaned exports) is an
  opt-out (``import_rules``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from newsletter.errors import UserError

__all__ = [
    "MAILCHIMP_ATTRIBUTES",
    "MAILCHIMP_DROPPED",
    "MAILCHIMP_FIELDS",
    "OWN_FIELDS",
    "Layout",
    "attribute_key",
    "read_layout",
]

#: Our own columns.
OWN_FIELDS = frozenset(
    {
        "email",
        "first_name",
        "last_name",
        "timezone",
        "locale",
        "tags",
        "consent_source",
        "consent_at",
        "consent_text_version",
    }
)
#: Mailchimp's export, by normalised header name: what each known column becomes.
MAILCHIMP_FIELDS = {
    "email_address": "email",
    "first_name": "first_name",
    "last_name": "last_name",
    "timezone": "timezone",
    "tags": "tags",
    "confirm_time": "confirm_time",  # double opt-in confirmation: the better consent date
    "optin_time": "optin_time",
    "unsub_time": "unsub_time",  # present in the "unsubscribed" export
    "clean_time": "clean_time",  # present in the "cleaned" (bounced) export
}
#: Mailchimp columns kept as attributes, under our name for them.
MAILCHIMP_ATTRIBUTES = {"member_rating": "member_rating", "cc": "country", "region": "region"}
#: Mailchimp columns never stored (``notes``: see the module docstring).
MAILCHIMP_DROPPED = frozenset(
    {
        "leid",
        "euid",
        "optin_ip",
        "confirm_ip",
        "latitude",
        "longitude",
        "gmtoff",
        "dstoff",
        "last_changed",
        "notes",
        "unsub_campaign_title",
        "unsub_campaign_id",
        "unsub_reason",
        "unsub_reason_other",
        "clean_campaign_title",
        "clean_campaign_id",
        "marketing_permissions",
    }
)

_NOT_KEY = re.compile(r"[^a-z0-9]+")


def attribute_key(name: str) -> str:
    """A header or attribute name as stored: lowercase, runs of other characters as ``_``."""
    return _NOT_KEY.sub("_", name.strip().lower()).strip("_")


@dataclass
class Layout:
    """Where each field sits in a row, decided once from the header."""

    format: str  # "newsletter" (ours) or "mailchimp"
    width: int
    headings: list[str]
    fields: dict[str, int]  # our field name → column
    attributes: list[tuple[int, str]]  # (column, attribute key)


def read_layout(header: list[str], where: str) -> Layout:
    """The layout of a file with this header; a :class:`UserError` at ``where`` if it has no
    email column, a column twice, or is not text."""
    keys = [attribute_key(name) for name in header]
    if any("\ufffd" in name or "\x00" in name for name in header):
        raise UserError("not a UTF-8 CSV file (an Excel workbook? save it as 'CSV UTF-8')", where)
    dropped: frozenset[str]
    if "email" in keys:
        fmt, known, extra_attributes, dropped = "newsletter", {k: k for k in OWN_FIELDS}, {}, frozenset()
    elif "email_address" in keys:
        fmt, known, extra_attributes, dropped = "mailchimp", MAILCHIMP_FIELDS, MAILCHIMP_ATTRIBUTES, MAILCHIMP_DROPPED
    else:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ";\t"):
            hint = " (the columns look separated by ';' or tabs: save it as comma-separated CSV)"
        raise UserError(
            "no email column: expected a header with 'email' (our format) or 'Email Address' (Mailchimp's export)"
            + hint,
            where,
        )
    fields: dict[str, int] = {}
    attributes: list[tuple[int, str]] = []
    seen: dict[str, str] = {}
    for index, (heading, key) in enumerate(zip(header, keys, strict=True)):
        if not key or key in dropped:
            continue
        target = known.get(key)
        name = target or extra_attributes.get(key, key)
        if name in seen:
            raise UserError(f"column {heading.strip()!r} appears twice (also as {seen[name]!r})", where)
        seen[name] = heading.strip()
        if target:
            fields[target] = index
        else:
            attributes.append((index, name))
    return Layout(fmt, len(header), [h.strip() for h in header], fields, attributes)
