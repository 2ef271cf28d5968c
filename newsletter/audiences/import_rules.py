"""The import's rules, as pure functions of a row, a chunk and what the store already holds.

No store and no file here: :class:`RowParser` turns a CSV record into an :class:`ImportRow` or a
:class:`Rejection`, :meth:`ImportRow.merge` merges a duplicate, and :func:`plan_chunk` decides,
from the lookup's answer, what each row of a chunk becomes. The writers (``import_writer``,
``import_stores``) only carry the decisions out. Rules, in the order they bite:

* A row is rejected, with its line number and a reason, when its email is missing or invalid,
  its time zone is not an IANA name, its locale is not a language tag, its consent date is not
  ISO 8601 (or is in the future), a value is longer than its column, it has more values than
  the header has columns, or it is not UTF-8. The other rows go in. The line is the physical
  line where the row starts, as an editor shows it (a quoted value may span lines).
* Duplicates inside the file are merged: later non-empty values win, tags are unioned,
  attributes merged; the consent record is the first one seen.
* An existing subscriber is updated: names, time zone and locale when the file has a value,
  attributes merged, tags added. Its consent record is never rewritten, and its status is never
  raised: an unsubscribed, bounced, complained or erased subscriber stays so. The only status
  change an import makes is downwards, when the file or the suppression list says opt-out
  (the upsert's ``SET`` clause, ``queries.subscriber_update``, holds that part).
* Suppression wins: a new address already in ``suppressions`` is created with the matching
  status (unsubscribed, bounced or complained; ``invalid`` → bounced, ``manual`` →
  unsubscribed). An address erased at the person's request is not stored again at all: the row
  is reported as rejected and an erased subscriber's row is never written to.
* A Mailchimp row with ``UNSUB_TIME`` or ``CLEAN_TIME`` (its unsubscribed and cleaned exports)
  is an opt-out: it is stored as unsubscribed/bounced and added to ``suppressions``.
* New subscribers are ``active``, with consent source and time from the row, else ``source``
  and now, and ``consent_text_version`` from the row, else the argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from newsletter.audiences.csv_layout import Layout
from newsletter.audiences.emails import InvalidEmail, normalise_email
from newsletter.audiences.names import clean_name
from newsletter.audiences.rejects import Rejection
from newsletter.audiences.values import (
    MAX_LENGTH,
    TAG_MAX,
    canonical_locale,
    canonical_zone,
    parse_datetime,
    split_tags,
)

__all__ = [
    "ERASED_REASON",
    "OPT_OUT_STATUSES",
    "SUPPRESSED_STATUS",
    "ChunkPlan",
    "ImportDefaults",
    "ImportRow",
    "Known",
    "RowParser",
    "plan_chunk",
]

#: suppressions.reason → the status a new subscriber with that address gets ("erased": not stored).
SUPPRESSED_STATUS = {
    "unsubscribed": "unsubscribed",
    "bounced": "bounced",
    "complained": "complained",
    "invalid": "bounced",
    "manual": "unsubscribed",
}
#: The statuses an import may lower an active or pending subscriber to.
OPT_OUT_STATUSES = ("unsubscribed", "bounced", "complained")
ERASED_REASON = "erased at the person's request; an import never stores it again"

_NAME_FIELDS = frozenset({"first_name", "last_name"})  # one visible line: audiences.clean_name


class ImportRow:
    """One valid row, already normalised; duplicates in a chunk merge into the first."""

    __slots__ = (
        "line",
        "email",
        "first_name",
        "last_name",
        "timezone",
        "locale",
        "consent_source",
        "consent_at",
        "consent_text_version",
        "status",
        "attributes",
        "tags",
    )

    def __init__(self, line: int, email: str) -> None:
        self.line = line
        self.email = email
        self.first_name: str | None = None
        self.last_name: str | None = None
        self.timezone: str | None = None
        self.locale: str | None = None
        self.consent_source: str | None = None
        self.consent_at: datetime | None = None
        self.consent_text_version: str | None = None
        self.status: str | None = None  # an opt-out the file itself states
        self.attributes: dict[str, str] = {}
        self.tags: set[str] = set()

    def merge(self, later: ImportRow) -> None:
        """Later non-empty values win; tags and attributes union; the first consent stands."""
        for name in ("first_name", "last_name", "timezone", "locale"):
            value = getattr(later, name)
            if value is not None:
                setattr(self, name, value)
        for name in ("consent_source", "consent_at", "consent_text_version"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(later, name))
        if later.status is not None:
            self.status = later.status
        self.attributes.update(later.attributes)
        self.tags |= later.tags
        self.line = later.line


class RowParser:
    """A CSV record → :class:`ImportRow` or :class:`Rejection`; the columns are looked up once."""

    def __init__(self, layout: Layout, now: datetime, encoding: str = "UTF-8") -> None:
        self.layout = layout
        self.now = now
        self.undecodable = f"not {encoding} text: save the file as 'CSV UTF-8'"
        self.email_at = layout.fields["email"]
        self.text_fields = [
            (name, layout.fields[name])
            for name in ("first_name", "last_name", "consent_source", "consent_text_version")
            if name in layout.fields
        ]
        self.timezone_at = layout.fields.get("timezone")
        self.locale_at = layout.fields.get("locale")
        self.tags_at = layout.fields.get("tags")
        self.dates = [
            (layout.fields[name], layout.headings[layout.fields[name]])
            for name in ("consent_at", "confirm_time", "optin_time")
            if name in layout.fields
        ]
        self.unsub_at = layout.fields.get("unsub_time")
        self.clean_at = layout.fields.get("clean_time")

    def parse(self, row: list[str], line: int) -> ImportRow | Rejection:
        layout = self.layout
        width = len(row)
        row = [value.strip() for value in row]
        if width < layout.width:
            row += [""] * (layout.width - width)
        raw_email = row[self.email_at]
        if width > layout.width:
            return Rejection(
                line,
                raw_email or None,
                f"too many columns: {width} values for {layout.width} headings (an unquoted comma?)",
            )
        joined = "".join(row)
        if "\ufffd" in joined:
            return Rejection(line, raw_email or None, self.undecodable)
        if "\x00" in joined:  # PostgreSQL cannot store it in text, SQLite would keep garbage
            return Rejection(
                line,
                (raw_email or "").replace("\x00", "") or None,
                "contains a NUL character (binary data pasted into the file?)",
            )
        if not raw_email:
            return Rejection(line, None, "missing email address")
        try:
            email = normalise_email(raw_email)
        except InvalidEmail as error:
            return Rejection(line, raw_email, f"invalid email address: {error}")
        out = ImportRow(line, email)
        for name, index in self.text_fields:
            value = row[index]
            if value and name in _NAME_FIELDS:
                value = clean_name(value) or ""
            if value:
                if len(value) > MAX_LENGTH[name]:
                    return Rejection(
                        line, raw_email, f"{layout.headings[index]} is longer than {MAX_LENGTH[name]} characters"
                    )
                setattr(out, name, value)
        if self.timezone_at is not None and (value := row[self.timezone_at]):
            zone = canonical_zone(value)
            if zone is None:
                return Rejection(
                    line, raw_email, f"invalid time zone {value!r}: expected an IANA name such as America/New_York"
                )
            out.timezone = zone
        if self.locale_at is not None and (value := row[self.locale_at]):
            locale = canonical_locale(value)
            if locale is None:
                return Rejection(line, raw_email, f"invalid locale {value!r}: expected a language tag such as en-US")
            out.locale = locale
        for index, heading in self.dates:
            if value := row[index]:
                try:
                    out.consent_at = parse_datetime(value, self.now)
                except ValueError as error:
                    return Rejection(line, raw_email, f"bad consent date {value!r} in {heading}: {error}")
                break
        if self.tags_at is not None and (value := row[self.tags_at]):
            tags = split_tags(value)
            if tags is None:
                return Rejection(line, raw_email, f"a tag is longer than {TAG_MAX} characters")
            out.tags.update(tags)
        if self.clean_at is not None and row[self.clean_at]:
            out.status = "bounced"
        elif self.unsub_at is not None and row[self.unsub_at]:
            out.status = "unsubscribed"
        for index, key in layout.attributes:
            if value := row[index]:
                out.attributes[key] = value
        return out


#: What the lookup found for an address: (subscriber id, status, suppression reason), any None.
Known = tuple[int | None, str | None, str | None]


@dataclass(frozen=True)
class ImportDefaults:
    """What one import fills in where a row says nothing, and what it counts against."""

    format: str  # the layout's, named in the suppression rows' detail
    source: str
    consent_text_version: str | None
    extra_tags: frozenset[str]
    now: datetime
    #: Rows with a higher id were created by this import (or by a signup meanwhile): a later
    #: chunk meeting one is a duplicate inside the file, counted as such. This keeps the
    #: duplicate count exact without remembering every address in memory.
    max_id_before: int


@dataclass
class ChunkPlan:
    """A chunk as its lookup decided it: the rows to write, and what they count as."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)  # in queries.SUBSCRIBER_COLUMNS order, for the store
    tagged: list[tuple[str, frozenset[str] | set[str]]] = field(default_factory=list)  # (email, tags)
    opt_outs: list[dict[str, Any]] = field(default_factory=list)  # suppressions rows the file states
    existing: set[str] = field(default_factory=set)  # addresses the lookup found stored
    created: int = 0
    updated: int = 0
    merged: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def _same(value: Any) -> Any:
    return value


def plan_chunk(
    chunk: dict[str, ImportRow],
    known: dict[str, Known],
    defaults: ImportDefaults,
    *,
    db_time: Callable[[datetime], Any] = _same,
    db_json: Callable[[dict[str, Any]], Any] = _same,
) -> ChunkPlan:
    """Decide each row of ``chunk`` from what the store holds (``known``, by address): its values
    (times and attributes through the store's ``db_time``/``db_json``), and what it counts as."""
    now = defaults.now
    db_now = db_time(now)
    extra_tags, max_id_before = defaults.extra_tags, defaults.max_id_before
    plan = ChunkPlan()
    rows, tagged, existing = plan.rows, plan.tagged, plan.existing
    created = updated = merged = 0
    nothing: Known = (None, None, None)
    for email, row in chunk.items():
        sid, prior_status, reason = known.get(email, nothing)
        if reason == "erased" or prior_status == "erased":
            plan.rejected.append(Rejection(row.line, email, ERASED_REASON))
            continue
        status = SUPPRESSED_STATUS.get(reason or "") or row.status or "active"
        if row.status and reason is None:
            plan.opt_outs.append(
                {
                    "email": email,
                    "reason": row.status,
                    "source": "import",
                    "detail": f"{defaults.format} export, line {row.line}",
                    "created_at": now,
                }
            )
        if sid is None:
            created += 1
        else:
            existing.add(email)
            if sid > max_id_before:
                merged += 1
            else:
                updated += 1
        rows.append(
            (
                email,
                row.first_name,
                row.last_name,
                row.timezone,
                row.locale,
                db_json(row.attributes),
                status,
                row.consent_source or defaults.source,
                db_time(row.consent_at) if row.consent_at else db_now,
                row.consent_text_version or defaults.consent_text_version,
                db_now,
                db_now,
                None if status == "active" else db_now,
            )
        )
        tags = (row.tags | extra_tags) if extra_tags else row.tags
        if tags:
            tagged.append((email, tags))
    plan.created, plan.updated, plan.merged = created, updated, merged
    return plan
