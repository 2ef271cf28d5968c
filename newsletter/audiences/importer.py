"""Import subscribers from a CSV file: validate every row, merge duplicates, upsert in chunks.

Two layouts are recognised from the header (names compared case-insensitively, spaces and
punctuation treated alike, so ``First Name`` matches ``first_name``):

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
  opt-out: it is stored as unsubscribed/bounced and added to ``suppressions``.

Rules, in the order they bite:

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
  change an import makes is downwards, when the file or the suppression list says opt-out.
* Suppression wins: a new address already in ``suppressions`` is created with the matching
  status (unsubscribed, bounced or complained; ``invalid`` → bounced, ``manual`` →
  unsubscribed). An address erased at the person's request is not stored again at all: the row
  is reported as rejected and an erased subscriber's row is never written to.
* New subscribers are ``active``, with consent source and time from the row, else ``source``
  and now, and ``consent_text_version`` from the row, else the argument.

Streaming: the file is read with ``csv.reader`` and handled in chunks of ``CHUNK_ROWS`` rows
(``PG_CHUNK_ROWS`` on PostgreSQL).
Each chunk is one transaction: one query for which addresses are already known or suppressed,
then its rows and tags: on SQLite one ``INSERT ... ON CONFLICT (email) DO UPDATE`` and one tag
insert with ``ON CONFLICT DO NOTHING``; on PostgreSQL one ``COPY`` into a temporary table and
one statement that writes both tables (see ``_Store`` and ``_PostgresStore``). No ORM objects, and
nothing is kept from one chunk to the next but counters and rejections, so memory stays flat
whatever the file size, and the progress bar (bytes read) moves as chunks commit. A crash
mid-file therefore leaves the earlier chunks in; running the same import again is safe and
finishes the job, because every write is an upsert.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import re
import sys
import threading
import zoneinfo
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import (JSON, Boolean, Column, Connection, Engine, MetaData, String, Table, Text, and_, bindparam, case,
                        cast, func, or_, select)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

from newsletter.audiences.emails import InvalidEmail, normalise_email
from newsletter.audiences.names import NAME_MAX_LENGTH, clean_name
from newsletter.audiences.rejects import Rejection, Rejections
from newsletter.audiences.suppression import add_suppressions
from newsletter.audiences.textfile import SAMPLE_BYTES, choose_delimiter, choose_encoding
from newsletter.db.bulk import copy_rows
from newsletter.db.models import Subscriber, SubscriberTag, Suppression
from newsletter.errors import UserError

__all__ = ["CHUNK_ROWS", "PG_CHUNK_ROWS", "ImportReport", "Rejection", "attribute_key", "display_path",
           "import_subscribers", "normalise_tag"]

CHUNK_ROWS = 2000
# PostgreSQL's chunk costs round trips (each a wake-up of the server and of the writer thread)
# and a commit: at 5,000 rows a 200,000-row import took 5-13% less time on a busy 2-core machine.
# SQLite, whose writer is Python work, was 5% slower with 5,000.
PG_CHUNK_ROWS = 5000

# Column widths from the models: PostgreSQL refuses a longer value (and with it the whole
# chunk), SQLite would silently keep it; both are wrong, so the row is rejected instead.
_MAX_LENGTH = {"first_name": NAME_MAX_LENGTH, "last_name": NAME_MAX_LENGTH, "consent_source": 100, "consent_text_version": 50}
_TAG_MAX = 100

# Our own columns. Header names are compared through attribute_key(), so "First Name" works too.
_OWN_FIELDS = frozenset(
    {"email", "first_name", "last_name", "timezone", "locale", "tags", "consent_source", "consent_at",
     "consent_text_version"}
)
# Mailchimp's export, by normalised header name: what each known column becomes.
_MAILCHIMP_FIELDS = {
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
_MAILCHIMP_ATTRIBUTES = {"member_rating": "member_rating", "cc": "country", "region": "region"}
_MAILCHIMP_DROPPED = frozenset(
    {"leid", "euid", "optin_ip", "confirm_ip", "latitude", "longitude", "gmtoff", "dstoff", "last_changed",
     "notes", "unsub_campaign_title", "unsub_campaign_id", "unsub_reason", "unsub_reason_other",
     "clean_campaign_title", "clean_campaign_id", "marketing_permissions"}
)

# suppressions.reason → the status a new subscriber with that address gets ("erased": not stored).
_SUPPRESSED_STATUS = {"unsubscribed": "unsubscribed", "bounced": "bounced", "complained": "complained",
                      "invalid": "bounced", "manual": "unsubscribed"}
_OPT_OUT_STATUSES = ("unsubscribed", "bounced", "complained")
_ERASED_REASON = "erased at the person's request; an import never stores it again"

_NAME_FIELDS = frozenset({"first_name", "last_name"})  # one visible line: audiences.clean_name
_NOT_KEY = re.compile(r"[^a-z0-9]+")
_TAG_SPLIT = re.compile(r"[;|,]")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*\Z")
_DATE_HINT = "expected ISO 8601, such as 2024-05-01 or 2024-05-01T09:30:00Z"


@dataclass
class ImportReport:
    path: str
    format: str  # "newsletter" (ours) or "mailchimp"
    total_rows: int = 0
    created: int = 0
    updated: int = 0
    duplicates_merged: int = 0
    #: The first rejections by line (at most ``rejects.KEPT``); ``rejected_count`` counts them all
    #: and ``rejects_file`` has every one.
    rejected: list[Rejection] = field(default_factory=list)
    rejected_count: int = 0
    rejects_file: str | None = None
    encoding: str = "UTF-8"
    #: Things the person should know although nothing failed (the file was not UTF-8).
    notices: list[str] = field(default_factory=list)

    @property
    def imported(self) -> int:
        """Distinct subscribers written (created or updated)."""
        return self.created + self.updated

    @property
    def all_rejected(self) -> bool:
        """The file had rows and not one of them went in."""
        return self.total_rows > 0 and self.rejected_count >= self.total_rows

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        data = asdict(self)
        data["imported"] = self.imported
        return data


def attribute_key(name: str) -> str:
    """A header or attribute name as stored: lowercase, runs of other characters as ``_``."""
    return _NOT_KEY.sub("_", name.strip().lower()).strip("_")


def normalise_tag(tag: str) -> str:
    """Tags are compared lowercased with single spaces: ``" Ketamine  Therapy"`` → ``"ketamine therapy"``."""
    return " ".join(tag.split()).lower()


# --- values -------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


@lru_cache(maxsize=4096)
def _canonical_zone(value: str) -> str | None:
    name = _zone_names().get(value.lower())
    if name:
        return name
    try:  # no tzdata listing on this system: ask zoneinfo directly
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    return value


@lru_cache(maxsize=1024)
def _canonical_locale(value: str) -> str | None:
    value = value.replace("_", "-")
    if len(value) > 35 or not _LOCALE.match(value):
        return None
    parts = value.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        out.append(part.upper() if len(part) == 2 else part.title() if len(part) == 4 else part.lower())
    return "-".join(out)


def _parse_datetime(value: str, now: datetime) -> datetime:
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
def _split_tags(cell: str) -> tuple[str, ...] | None:
    """The cell's tags, normalised; None if one is too long for the column."""
    if '"' in cell:  # Mailchimp: "ketamine","depression"
        try:
            parts = next(csv.reader([cell], skipinitialspace=True))
        except (csv.Error, StopIteration):
            parts = _TAG_SPLIT.split(cell.replace('"', ""))
    else:
        parts = _TAG_SPLIT.split(cell)
    tags = tuple(tag for tag in (normalise_tag(part) for part in parts) if tag)
    return None if any(len(tag) > _TAG_MAX for tag in tags) else tags


# --- rows and the header -------------------------------------------------------------------------


class _Row:
    """One valid row, already normalised; duplicates in a chunk merge into the first."""

    __slots__ = ("line", "email", "first_name", "last_name", "timezone", "locale", "consent_source",
                 "consent_at", "consent_text_version", "status", "attributes", "tags")

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

    def merge(self, later: _Row) -> None:
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


@dataclass
class _Layout:
    """Where each field sits in a row, decided once from the header."""

    format: str
    width: int
    headings: list[str]
    fields: dict[str, int]  # our field name → column
    attributes: list[tuple[int, str]]  # (column, attribute key)


def _read_layout(header: list[str], where: str) -> _Layout:
    keys = [attribute_key(name) for name in header]
    if any("\ufffd" in name or "\x00" in name for name in header):
        raise UserError("not a UTF-8 CSV file (an Excel workbook? save it as 'CSV UTF-8')", where)
    if "email" in keys:
        fmt, known, extra_attributes, dropped = "newsletter", {k: k for k in _OWN_FIELDS}, {}, frozenset()
    elif "email_address" in keys:
        fmt, known, extra_attributes, dropped = "mailchimp", _MAILCHIMP_FIELDS, _MAILCHIMP_ATTRIBUTES, _MAILCHIMP_DROPPED
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
    for index, (heading, key) in enumerate(zip(header, keys)):
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
    return _Layout(fmt, len(header), [h.strip() for h in header], fields, attributes)


class _RowParser:
    def __init__(self, layout: _Layout, now: datetime, encoding: str = "UTF-8") -> None:
        self.layout = layout
        self.now = now
        self.undecodable = f"not {encoding} text: save the file as 'CSV UTF-8'"
        self.email_at = layout.fields["email"]
        self.text_fields = [(name, layout.fields[name]) for name in
                            ("first_name", "last_name", "consent_source", "consent_text_version")
                            if name in layout.fields]
        self.timezone_at = layout.fields.get("timezone")
        self.locale_at = layout.fields.get("locale")
        self.tags_at = layout.fields.get("tags")
        self.dates = [(layout.fields[name], layout.headings[layout.fields[name]]) for name in
                      ("consent_at", "confirm_time", "optin_time") if name in layout.fields]
        self.unsub_at = layout.fields.get("unsub_time")
        self.clean_at = layout.fields.get("clean_time")

    def parse(self, row: list[str], line: int) -> _Row | Rejection:
        layout = self.layout
        width = len(row)
        row = [value.strip() for value in row]
        if width < layout.width:
            row += [""] * (layout.width - width)
        raw_email = row[self.email_at]
        if width > layout.width:
            return Rejection(line, raw_email or None,
                             f"too many columns: {width} values for {layout.width} headings (an unquoted comma?)")
        joined = "".join(row)
        if "\ufffd" in joined:
            return Rejection(line, raw_email or None, self.undecodable)
        if "\x00" in joined:  # PostgreSQL cannot store it in text, SQLite would keep garbage
            return Rejection(line, (raw_email or "").replace("\x00", "") or None,
                             "contains a NUL character (binary data pasted into the file?)")
        if not raw_email:
            return Rejection(line, None, "missing email address")
        try:
            email = normalise_email(raw_email)
        except InvalidEmail as error:
            return Rejection(line, raw_email, f"invalid email address: {error}")
        out = _Row(line, email)
        for name, index in self.text_fields:
            value = row[index]
            if value and name in _NAME_FIELDS:
                value = clean_name(value) or ""
            if value:
                if len(value) > _MAX_LENGTH[name]:
                    return Rejection(line, raw_email, f"{layout.headings[index]} is longer than {_MAX_LENGTH[name]} characters")
                setattr(out, name, value)
        if self.timezone_at is not None and (value := row[self.timezone_at]):
            zone = _canonical_zone(value)
            if zone is None:
                return Rejection(line, raw_email, f"invalid time zone {value!r}: expected an IANA name such as America/New_York")
            out.timezone = zone
        if self.locale_at is not None and (value := row[self.locale_at]):
            locale = _canonical_locale(value)
            if locale is None:
                return Rejection(line, raw_email, f"invalid locale {value!r}: expected a language tag such as en-US")
            out.locale = locale
        for index, heading in self.dates:
            if (value := row[index]):
                try:
                    out.consent_at = _parse_datetime(value, self.now)
                except ValueError as error:
                    return Rejection(line, raw_email, f"bad consent date {value!r} in {heading}: {error}")
                break
        if self.tags_at is not None and (value := row[self.tags_at]):
            tags = _split_tags(value)
            if tags is None:
                return Rejection(line, raw_email, f"a tag is longer than {_TAG_MAX} characters")
            out.tags.update(tags)
        if self.clean_at is not None and row[self.clean_at]:
            out.status = "bounced"
        elif self.unsub_at is not None and row[self.unsub_at]:
            out.status = "unsubscribed"
        for index, key in layout.attributes:
            if (value := row[index]):
                out.attributes[key] = value
        return out


# --- the store ----------------------------------------------------------------------------------


_SUBSCRIBER_COLUMNS = ("email", "first_name", "last_name", "timezone", "locale", "attributes", "status",
                       "consent_source", "consent_at", "consent_text_version", "created_at", "updated_at",
                       "status_changed_at")


def _set_clause(stmt: Any, attributes: Any) -> dict[str, Any]:
    """What ON CONFLICT (email) DO UPDATE writes into an existing subscriber."""
    c = Subscriber.__table__.c
    excluded = stmt.excluded
    # An import only ever lowers a status (active/pending → an opt-out), never raises one.
    lowered = and_(c.status.in_(_constant(("active", "pending"))), excluded.status.in_(_constant(_OPT_OUT_STATUSES)))
    return {
        "first_name": func.coalesce(excluded.first_name, c.first_name),
        "last_name": func.coalesce(excluded.last_name, c.last_name),
        "timezone": func.coalesce(excluded.timezone, c.timezone),
        "locale": func.coalesce(excluded.locale, c.locale),
        "attributes": attributes,
        "status": case((lowered, excluded.status), else_=c.status),
        "status_changed_at": case((lowered, excluded.updated_at), else_=c.status_changed_at),
        "updated_at": excluded.updated_at,
    }


def _constant(values: tuple[str, ...]) -> Any:
    """Fixed strings of ours rendered into the SQL text, so the only parameters are the rows'."""
    return bindparam(None, values, expanding=True, literal_execute=True)


# An erased person's row is never written to again (the pre-read skips it; this guards the race
# with a concurrent erasure).
_NOT_ERASED = Subscriber.__table__.c.status.not_in(_constant(("erased",)))


class _Store:
    """The statements of a chunk, in the fastest form each store offers.

    Measured on 100,000 rows, SQLAlchemy's per-row parameter handling (and, on PostgreSQL,
    psycopg parsing the long multi-row VALUES statements) cost more than the database work:
    5 s on SQLite and 18 s on PostgreSQL. So the statements are SQLAlchemy constructs
    (``sqlite.insert`` / ``postgresql.insert`` with ``on_conflict_do_update``), but the rows
    travel in bulk: as a plain DB-API ``executemany`` on SQLite (upsert, then tags), as one
    ``COPY`` into a temporary table on PostgreSQL, read by one statement that writes both
    tables (see :class:`_PostgresStore`). Values are converted by the columns' own types
    (``db_time``, ``db_json``) so the store receives exactly what the ORM would write.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        c = Subscriber.__table__.c
        self._time = _bind_processor(c.consent_at.type, engine)
        emails = self._email_list()
        self.lookup_stmt = (
            select(emails.c.value, Subscriber.id, Subscriber.status, Suppression.reason)
            .select_from(emails.outerjoin(Subscriber, Subscriber.email == emails.c.value)
                         .outerjoin(Suppression, Suppression.email == emails.c.value))
            .where(or_(Subscriber.id.is_not(None), Suppression.id.is_not(None)))
        )

    def _email_list(self) -> Any:
        raise NotImplementedError

    def lookup(self, conn: Connection, emails: list[str]) -> list[tuple[str, int | None, str | None, str | None]]:
        """(email, subscriber id, status, suppression reason) for the addresses already known."""
        return [tuple(row) for row in conn.execute(self.lookup_stmt, {"emails": json.dumps(emails)}).all()]  # type: ignore[misc]

    def db_time(self, value: datetime) -> Any:
        return self._time(value) if self._time else value

    def db_json(self, value: dict[str, Any]) -> Any:
        return value

    #: Let the parser go on as soon as the writer takes a chunk; else the store calls ``release``.
    RELEASE_AT_START = True

    def write(self, conn: Connection, rows: list[tuple[Any, ...]], tagged: list[tuple[str, frozenset[str] | set[str]]],
              existing: set[str] | None, release: Callable[[], None]) -> None:
        """Upsert ``rows``, then add the tags of each address written: ``tagged`` is (email, tags).

        ``existing`` is the addresses the lookup found stored (None: any may be). A store may
        insert the others without ``ON CONFLICT``, and then fail with :meth:`lost_race`. Unless
        ``RELEASE_AT_START``, the store calls ``release`` when its long wait for the database begins."""
        ids = self.upsert(conn, rows)
        pairs = [(ids[email], tag) for email, tags in tagged if email in ids for tag in tags]
        if pairs:
            self.add_tags(conn, pairs)

    def lost_race(self, error: DBAPIError) -> bool:
        """Whether ``error`` is another writer storing an address that the lookup found new."""
        return False

    def upsert(self, conn: Connection, rows: list[tuple[Any, ...]]) -> dict[str, int]:
        """Rows are tuples in ``_SUBSCRIBER_COLUMNS`` order, already through db_time/db_json.
        Returns the id of every address written (an erased one is not)."""
        raise NotImplementedError

    def add_tags(self, conn: Connection, pairs: list[tuple[int, str]]) -> None:
        """(subscriber id, tag) pairs; a pair already there is left alone."""
        raise NotImplementedError


def _bind_processor(type_: Any, engine: Engine) -> Callable[[Any], Any] | None:
    """The function SQLAlchemy applies to a value of this column type for this store."""
    return type_.dialect_impl(engine.dialect).bind_processor(engine.dialect)


def _slot(name: str) -> Any:
    """A positional parameter filled by executemany (the placeholder value lets it compile)."""
    return bindparam(name, None, type_=String, required=False)


class _SqliteStore(_Store):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        table = Subscriber.__table__
        self._json = _bind_processor(table.c.attributes.type, engine)
        stmt = sqlite.insert(table).values({name: _slot(name) for name in _SUBSCRIBER_COLUMNS})
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.email],
            set_=_set_clause(stmt, func.json_patch(table.c.attributes, stmt.excluded.attributes)),
            where=_NOT_ERASED,
        )
        self.upsert_sql = self._compile(stmt, _SUBSCRIBER_COLUMNS)
        # sqlite3's executemany returns no rows, so the ids are read back in one query
        emails = self._email_list()
        self.ids_stmt = select(Subscriber.id, Subscriber.email).where(
            Subscriber.email.in_(select(emails.c.value)), _NOT_ERASED)
        tags = sqlite.insert(SubscriberTag.__table__).values(subscriber_id=_slot("subscriber_id"), tag=_slot("tag"))
        self.tags_sql = self._compile(tags.on_conflict_do_nothing(), ("subscriber_id", "tag"))

    def _compile(self, stmt: Any, names: Sequence[str]) -> str:
        """SQL text with ``?`` for the rows' values only (the constants are rendered inline)."""
        compiled = stmt.compile(dialect=self.engine.dialect, compile_kwargs={"render_postcompile": True})
        if tuple(compiled.positiontup or ()) != tuple(names):  # pragma: no cover - a guard for SQLAlchemy upgrades
            raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
        return str(compiled)

    def _email_list(self) -> Any:
        return func.json_each(bindparam("emails", type_=Text)).table_valued("value")

    def db_json(self, value: dict[str, Any]) -> Any:
        if not value:
            return "{}"
        return self._json(value) if self._json else value

    def upsert(self, conn: Connection, rows: list[tuple[Any, ...]]) -> dict[str, int]:
        conn.exec_driver_sql(self.upsert_sql, rows)
        emails = json.dumps([row[0] for row in rows])
        return dict((email, sid) for sid, email in conn.execute(self.ids_stmt, {"emails": emails}).all())

    def add_tags(self, conn: Connection, pairs: list[tuple[int, str]]) -> None:
        conn.exec_driver_sql(self.tags_sql, pairs)


class _PostgresStore(_Store):
    """After the lookup, a chunk is one ``COPY`` and one statement.

    The rows, each with its tags as an array and whether the lookup found it stored, are copied
    (``newsletter.db.bulk.copy_rows``) into ``subscribers_incoming``, a temporary table of the
    session made on the first chunk (columns typed as the model's; ``ON COMMIT DELETE ROWS``, so
    it is empty at the start of every chunk's transaction). One statement then writes both
    tables: a CTE ``fresh`` inserts the addresses the lookup did not find, without ``ON
    CONFLICT``, and their tags the same way (nobody else can have tagged a row this transaction
    has not committed); a CTE ``written`` upserts the others exactly as before (``ON CONFLICT
    (email) DO UPDATE … WHERE`` not erased), and their tags go in with ``ON CONFLICT DO
    NOTHING``. Tags join back on email to the rows the inserts returned, so an address that was
    not written gets none. If another writer stores one of the "new" addresses between the
    lookup and the insert, the unique violation (:meth:`lost_race`) rolls the chunk back and
    ``_Writer`` writes the same rows again with every one through ``ON CONFLICT``.

    Against the earlier form (the rows as one ``json_to_recordset`` document for the upsert, the
    ids back to Python, the tags as a second document), per 2,000 rows: the server reads COPY
    text (6 ms) instead of parsing JSON (12 ms), the ``ON CONFLICT`` arbitration of new rows and
    of their tags is gone (6 ms), and psycopg formats the rows in C where Python built and
    encoded a dict per row. Figures: bench/RESULTS.md, section 3.
    """

    TABLE = "subscribers_incoming"
    RELEASE_AT_START = False

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        table, tags = Subscriber.__table__, SubscriberTag.__table__
        incoming = Table(self.TABLE, MetaData(), *(Column(name, table.c[name].type) for name in _SUBSCRIBER_COLUMNS),
                         Column("existing", Boolean), Column("tags", ARRAY(tags.c.tag.type)), prefixes=["TEMPORARY"],
                         postgresql_on_commit="DELETE ROWS")
        self.create_sql = str(CreateTable(incoming, if_not_exists=True).compile(dialect=engine.dialect)).strip()
        self.copy_sql = f"COPY {self.TABLE} ({', '.join(incoming.c.keys())}) FROM STDIN"
        values = [incoming.c[name] for name in _SUBSCRIBER_COLUMNS]
        fresh = postgresql.insert(table).from_select(list(_SUBSCRIBER_COLUMNS), select(*values).where(
            incoming.c.existing.is_(False))).returning(table.c.id, table.c.email).cte("fresh")
        stmt = postgresql.insert(table).from_select(list(_SUBSCRIBER_COLUMNS), select(*values).where(
            incoming.c.existing.is_(True)))
        attributes = cast(cast(table.c.attributes, JSONB).op("||")(cast(stmt.excluded.attributes, JSONB)), JSON)
        written = stmt.on_conflict_do_update(
            index_elements=[table.c.email], set_=_set_clause(stmt, attributes), where=_NOT_ERASED,
        ).returning(table.c.id, table.c.email).cte("written")

        def tag_rows(cte: Any) -> Any:
            return select(cte.c.id, func.unnest(incoming.c.tags)).join_from(
                cte, incoming, incoming.c.email == cte.c.email)

        pair = ["subscriber_id", "tag"]
        fresh_tags = postgresql.insert(tags).from_select(pair, tag_rows(fresh)).cte("fresh_tags")
        write = postgresql.insert(tags).from_select(pair, tag_rows(written)).on_conflict_do_nothing().add_cte(fresh_tags)
        compiled = write.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
        if compiled.positiontup:  # pragma: no cover - a guard for SQLAlchemy upgrades
            raise RuntimeError(f"unexpected parameters {compiled.positiontup}")
        self.write_sql = str(compiled)
        self._has_table: Any = None  # the psycopg connection known to have the temporary table

    def _email_list(self) -> Any:
        return func.json_array_elements_text(cast(bindparam("emails", type_=Text), JSON)).table_valued("value")

    def lookup(self, conn: Connection, emails: list[str]) -> list[tuple[str, int | None, str | None, str | None]]:
        # psycopg prepares a statement run five times, and PostgreSQL may then keep the generic
        # plan chosen while the table was small (a hash join over all subscribers): each chunk
        # of a big import into a fresh table got slower, 40 ms to 220 ms per chunk over 1M rows,
        # wherever autovacuum had not analyzed the table yet. A custom plan each time stays on the
        # email index.
        driver = conn.connection.driver_connection
        threshold = getattr(driver, "prepare_threshold", None)
        if threshold is None:
            return super().lookup(conn, emails)
        driver.prepare_threshold = None
        try:
            return super().lookup(conn, emails)
        finally:
            driver.prepare_threshold = threshold

    def db_time(self, value: datetime) -> Any:
        return value.astimezone(timezone.utc).isoformat()  # COPY text, read as timestamptz

    def db_json(self, value: dict[str, Any]) -> Any:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else "{}"

    def write(self, conn: Connection, rows: list[tuple[Any, ...]], tagged: list[tuple[str, frozenset[str] | set[str]]],
              existing: set[str] | None, release: Callable[[], None]) -> None:
        arrays = {email: _pg_text_array(tags) for email, tags in tagged}
        driver = conn.connection.driver_connection
        # The table is made once per session; if this transaction fails, it may be gone again.
        create = None if driver is self._has_table else self.create_sql
        self._has_table = None
        copy_rows(conn, self.copy_sql,
                  ((*row, existing is None or row[0] in existing, arrays.get(row[0])) for row in rows), create=create)
        release()  # the parser may go on while the server works (see _BackgroundWriter)
        conn.exec_driver_sql(self.write_sql)
        self._has_table = driver

    def lost_race(self, error: DBAPIError) -> bool:
        cause = error.orig
        diag = getattr(cause, "diag", None)
        return (getattr(cause, "sqlstate", None) == "23505"  # unique_violation
                and getattr(diag, "table_name", None) == Subscriber.__tablename__)


def _pg_text_array(values: frozenset[str] | set[str]) -> str:
    """A PostgreSQL array literal of strings, each quoted: ``{"a","b \\"c\\""}``."""
    return "{" + ",".join(['"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values]) + "}"


def _store(engine: Engine) -> _Store:
    if engine.dialect.name == "postgresql":
        return _PostgresStore(engine)
    if engine.dialect.name == "sqlite":
        return _SqliteStore(engine)
    raise NotImplementedError(f"no bulk upsert for {engine.dialect.name}")  # pragma: no cover


@dataclass
class _Plan:
    """A chunk as its lookup decided it: the rows to write, and what they count as."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)  # in _SUBSCRIBER_COLUMNS order, for the store
    tagged: list[tuple[str, frozenset[str] | set[str]]] = field(default_factory=list)  # (email, tags)
    opt_outs: list[dict[str, Any]] = field(default_factory=list)  # suppressions rows the file states
    existing: set[str] = field(default_factory=set)  # addresses the lookup found stored
    created: int = 0
    updated: int = 0
    merged: int = 0
    rejected: list[Rejection] = field(default_factory=list)


class _Writer:
    """Writes one chunk per transaction and counts what it did.

    The chunks share one connection, opened by the first ``write`` (so in the thread that
    writes) and closed by ``close``: a connection taken from the pool for each chunk cost a
    liveness ping each time (``pool_pre_ping``), 8 ms a chunk with the parser busy beside it.
    """

    def __init__(self, engine: Engine, fmt: str, *, source: str, consent_text_version: str | None,
                 extra_tags: Sequence[str], now: datetime, reject: Callable[[Rejection], None]) -> None:
        self.engine = engine
        self.format = fmt
        self.created = self.updated = self.duplicates_merged = 0
        self.reject = reject  # called on this writer's thread: Rejections.add takes a lock
        self.source = source
        self.consent_text_version = consent_text_version
        self.extra_tags = frozenset(extra_tags)
        self.now = now
        self.store = _store(engine)
        with engine.connect() as conn:
            # Rows with a higher id were created by this import (or by a signup meanwhile): a
            # later chunk meeting one is a duplicate inside the file, counted as such. This
            # keeps the duplicate count exact without remembering every address in memory.
            self.max_id_before = conn.scalar(select(func.max(Subscriber.id))) or 0
        self._conn: Connection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, chunk: dict[str, _Row], release: Callable[[], None] = lambda: None) -> None:
        """Write one chunk in one transaction. ``release`` (idempotent) tells the caller that
        the parser may start on another chunk: at once, or when the store's long wait begins."""
        if self.store.RELEASE_AT_START:
            release()
        if not chunk:
            return
        if self._conn is None:
            self._conn = self.engine.connect()
        conn = self._conn
        plan: _Plan | None = None
        try:
            with conn.begin():
                plan = self._plan(conn, chunk)
                self._apply(conn, plan, plan.existing, release)
        except DBAPIError as error:
            if plan is None or not self.store.lost_race(error):
                raise
            # Someone stored an address of the chunk between the lookup and the insert, and the
            # transaction was rolled back: the same rows again, every one through ON CONFLICT.
            with conn.begin():
                self._apply(conn, plan, None, release)
        self.created += plan.created
        self.updated += plan.updated
        self.duplicates_merged += plan.merged
        for rejection in plan.rejected:
            self.reject(rejection)

    def _plan(self, conn: Connection, chunk: dict[str, _Row]) -> _Plan:
        """Look the chunk's addresses up and decide each row: its values, and what it counts as."""
        store = self.store
        now = self.now
        db_now = store.db_time(now)
        db_time, db_json = store.db_time, store.db_json
        plan = _Plan()
        rows, tagged, existing = plan.rows, plan.tagged, plan.existing
        created = updated = merged = 0
        known = {email: (sid, status, reason) for email, sid, status, reason in store.lookup(conn, list(chunk))}
        for email, row in chunk.items():
            sid, prior_status, reason = known.get(email, (None, None, None))
            if reason == "erased" or prior_status == "erased":
                plan.rejected.append(Rejection(row.line, email, _ERASED_REASON))
                continue
            status = _SUPPRESSED_STATUS.get(reason or "") or row.status or "active"
            if row.status and reason is None:
                plan.opt_outs.append({"email": email, "reason": row.status, "source": "import",
                                      "detail": f"{self.format} export, line {row.line}", "created_at": now})
            if sid is None:
                created += 1
            else:
                existing.add(email)
                if sid > self.max_id_before:
                    merged += 1
                else:
                    updated += 1
            rows.append((
                email, row.first_name, row.last_name, row.timezone, row.locale, db_json(row.attributes), status,
                row.consent_source or self.source, db_time(row.consent_at) if row.consent_at else db_now,
                row.consent_text_version or self.consent_text_version, db_now, db_now,
                None if status == "active" else db_now,
            ))
            tags = (row.tags | self.extra_tags) if self.extra_tags else row.tags
            if tags:
                tagged.append((email, tags))
        plan.created, plan.updated, plan.merged = created, updated, merged
        return plan

    def _apply(self, conn: Connection, plan: _Plan, existing: set[str] | None, release: Callable[[], None]) -> None:
        if plan.rows:
            self.store.write(conn, plan.rows, plan.tagged, existing, release)
        if plan.opt_outs:
            add_suppressions(conn, plan.opt_outs)  # the list's one writer: first reason kept


class _BackgroundWriter:
    """Writes chunks on a thread of its own, in order, while the caller parses the next one.

    Parsing and validating addresses is Python work; writing a chunk is mostly waiting for the
    database, during which the driver lets other Python threads run. At most one chunk waits
    while another is written (and one more is parsed), so memory stays at three chunks. A
    failed write stops the import: the next ``write`` (or leaving the block) raises it in the
    caller's thread.

    The parser's slot is freed by the writer (``release``), not by taking the chunk: on SQLite
    at once, on PostgreSQL only when the chunk's long statement is sent. A round trip of the
    writer that ends while the parser runs waits for the GIL (up to ``sys.getswitchinterval()``,
    5 ms) and, on a small machine, for a core: parsing the next chunk during the lookup and the
    ``COPY`` made the lookup of 2,000 addresses take 13 ms instead of 4. Parsing fits into the
    statement's 25 ms instead, during which the writer thread only waits.
    """

    def __init__(self, writer: _Writer) -> None:
        self._writer = writer
        self._queue: queue.Queue[dict[str, _Row] | None] = queue.Queue()
        self._slot = threading.Semaphore(1)  # taken by each chunk queued, given back by release()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="import-writer", daemon=True)

    def __enter__(self) -> "_BackgroundWriter":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while (chunk := self._queue.get()) is not None:
                released = False

                def release() -> None:
                    nonlocal released
                    if not released:
                        released = True
                        self._slot.release()

                if self._error is None:
                    try:
                        self._writer.write(chunk, release)
                    except BaseException as error:  # handed to the caller's thread
                        self._error = error
                release()
        finally:
            try:
                self._writer.close()
            except Exception as error:  # pragma: no cover - closing a connection that broke
                if self._error is None:
                    self._error = error

    def write(self, chunk: dict[str, _Row]) -> None:
        self._raise_if_failed()
        self._slot.acquire()
        self._queue.put(chunk)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if kind is None:
            self._raise_if_failed()


# --- reading ------------------------------------------------------------------------------------


@contextmanager
def _progress_bar(enabled: bool, total: int, label: str) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda _done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)
        bar.update(task, completed=total)


def display_path(path: Path) -> str:
    """A path as the user should read it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _lines(source: Iterator[str], again: deque[str], taken: list[str]) -> Iterator[str]:
    """The file's physical lines for ``csv.reader``: those pushed back first, each remembered in
    ``taken`` (the lines of the record being read, cleared at each record)."""
    append = taken.append
    while again:
        line = again.popleft()
        append(line)
        yield line
    for line in source:
        append(line)
        yield line


class _Records:
    """The file's CSV records, each with the physical line it starts on.

    An unclosed quote makes ``csv`` read every following line into one value, up to the next
    quote in the file: the rows in between are lost without a word. When a record spans lines
    and one of the lines it swallowed reads, on its own, as a row (see ``_Swallow``), the
    record is given up (:meth:`read_again_after`) and the lines after the one where its quote
    opened are read again as rows. Each line is read at most twice over: a swallow ends at the next quote, and the
    lines after it are read as they would have been.
    """

    def __init__(self, source: Iterator[str], delimiter: str) -> None:
        self.delimiter = delimiter
        self._source = source
        self._again: deque[str] = deque()
        self._taken: list[str] = []
        self._base = 0  # physical lines before the current reader's first
        self._reader = self._new_reader()

    def _new_reader(self) -> Any:
        return csv.reader(_lines(self._source, self._again, self._taken), delimiter=self.delimiter)

    @property
    def next_line(self) -> int:
        """The physical line the next record starts on."""
        return self._base + self._reader.line_num + 1

    @property
    def last_line(self) -> int:
        """The physical line the last record read ended on."""
        return self._base + self._reader.line_num

    def read(self) -> list[str]:
        """The next record; raises StopIteration at the end, ``csv.Error`` for one it cannot read."""
        self._taken.clear()
        return next(self._reader)

    def continuation(self) -> list[str]:
        """The physical lines of the last record after its first."""
        return self._taken[1:]

    def read_again_after(self, line: int, last_kept: int | None = None) -> None:
        """Give up the record that started on ``line``: the lines after ``last_kept`` (the line
        where its unclosed quote opened; by default ``line``) are read next."""
        last_kept = line if last_kept is None else last_kept
        self._again.extendleft(reversed(self._taken[last_kept - line + 1:]))
        self._taken.clear()
        self._base = last_kept
        self._reader = self._new_reader()


class _Swallow:
    """Tells a value that runs over lines because a quote was never closed from one that does
    so on purpose (a note with a line break): a line it took in reads as a row of the file on
    its own, with two or more values and an email address in the email column."""

    def __init__(self, layout: _Layout, delimiter: str) -> None:
        self.email_at = layout.fields["email"]
        self.width = layout.width
        self.delimiter = delimiter

    def __call__(self, lines: Iterable[str]) -> bool:
        for line in lines:
            if "@" not in line:
                continue
            values = next(csv.reader([line], delimiter=self.delimiter), [])
            if 2 <= len(values) <= self.width and self.email_at < len(values) and _is_address(values[self.email_at]):
                return True
        return False


def _is_address(value: str) -> bool:
    try:
        normalise_email(value)
    except InvalidEmail:
        return False
    return True


def _quote_opened(row: list[str], line: int) -> int:
    """The line where a swallowing record's unclosed quote opened: the value that did it is the
    last one with a line break (the swallow runs to the record's end), after the breaks before it."""
    spanning = max((i for i, value in enumerate(row) if "\n" in value), default=0)
    return line + sum(value.count("\n") for value in row[:spanning])


def _unclosed_quote(row: list[str], email_at: int, line: int, opened: int, end: int) -> Rejection:
    email = row[email_at].strip() if email_at < len(row) and "\n" not in row[email_at] else ""
    where = "this line" if opened == line else f"line {opened}"
    return Rejection(line, email or None,
                     f'unclosed quote: the value that opens with " on {where} runs on to line {end}; this row is '
                     f"skipped and the rows below it are read on their own")


def _first_line(sample: bytes, codec: str) -> str:
    """The first non-blank line of the sample, as text (to choose the separator)."""
    text = sample.decode(codec, errors="replace")
    return next((line for line in text.splitlines() if line.strip()), "")


def _checked_tags(tags: Sequence[str]) -> list[str]:
    out = []
    for tag in tags:
        tag = normalise_tag(tag)
        if len(tag) > _TAG_MAX:
            raise UserError(f"tag {tag[:20]!r}... is longer than {_TAG_MAX} characters", "--tag")
        if tag:
            out.append(tag)
    return out


def _read_header(records: _Records, name: str) -> _Layout:
    header: list[str] = []
    try:
        while not header:
            header = records.read()
    except StopIteration:
        raise UserError("the file is empty: expected a CSV header with an email column", f"{name}: line 1") from None
    except csv.Error as error:
        raise UserError(f"not a CSV file ({error})", f"{name}: line {records.last_line}") from None
    return _read_layout(header, f"{name}: line {records.last_line}")


def import_subscribers(
    engine: Engine,
    path: Path,
    *,
    tags: Sequence[str] = (),
    source: str = "csv import",
    consent_text_version: str | None = None,
    progress: bool | None = None,
    rejects: Path | None = None,
    encoding: str | None = None,
) -> ImportReport:
    """Import the CSV at ``path``; returns what happened, with the first rejected rows.

    ``tags`` are added to every imported row (the CLI's ``--tag``). ``progress`` shows a bar on
    stderr (by bytes read); None means "when stderr is a terminal". ``rejects``: a file that
    gets every rejected row (``line,email,reason``; see ``rejects``), else only the first are
    kept. ``encoding`` overrides the detection (see ``textfile``). Raises :class:`UserError`
    for a missing or unreadable file, one in no recognisable encoding, or one with no email column.
    """
    path = Path(path)
    name = display_path(path)
    extra_tags = _checked_tags(tags)
    if len(source) > _MAX_LENGTH["consent_source"]:
        raise UserError(f"longer than {_MAX_LENGTH['consent_source']} characters", "consent source")
    if consent_text_version and len(consent_text_version) > _MAX_LENGTH["consent_text_version"]:
        raise UserError(f"longer than {_MAX_LENGTH['consent_text_version']} characters", "consent text version")
    if not path.exists():
        raise UserError("no such file", name)
    if not path.is_file():
        raise UserError("not a file", name)
    if rejects is not None and Path(rejects).resolve() == path.resolve():
        raise UserError("the rejected rows cannot be written over the file being imported", "--rejects")
    if progress is None:
        progress = sys.stderr.isatty()
    try:
        raw = open(path, "rb")
    except OSError as error:
        raise UserError(f"cannot read the file: {error.strerror}", name) from None
    with raw:
        sample = raw.read(SAMPLE_BYTES)
        chosen = choose_encoding(sample, complete=len(sample) < SAMPLE_BYTES,
                                 where=f"{name}: line 1", requested=encoding)
        raw.seek(0)
        # Undecodable bytes become U+FFFD and reject their row, not the whole file.
        text = io.TextIOWrapper(raw, encoding=chosen.codec, errors="replace", newline="")
        records = _Records(text, choose_delimiter(_first_line(sample, chosen.codec)))
        layout = _read_header(records, name)
        report = ImportReport(path=name, format=layout.format, encoding=chosen.label)
        if chosen.notice:
            report.notices.append(f"{name}: {chosen.notice}")
        with Rejections(Path(rejects) if rejects is not None else None,
                        display_path(Path(rejects)) if rejects is not None else name) as rejected:
            writer = _Writer(engine, layout.format, source=source, consent_text_version=consent_text_version,
                             extra_tags=extra_tags, now=datetime.now(timezone.utc), reject=rejected.add)
            parser = _RowParser(layout, writer.now, chosen.label)
            with _progress_bar(progress, path.stat().st_size, f"Importing {path.name}") as advance:
                _read_rows(records, parser, writer, report, rejected.add, lambda: advance(raw.tell()))
    report.created, report.updated = writer.created, writer.updated
    report.duplicates_merged += writer.duplicates_merged
    report.rejected = rejected.first()
    report.rejected_count = rejected.count
    report.rejects_file = display_path(rejected.written_to) if rejected.written_to else None
    return report


def _read_rows(records: _Records, parser: _RowParser, writer: _Writer, report: ImportReport,
               reject: Callable[[Rejection], None], advance: Callable[[], None]) -> None:
    """Parse every record into chunks for the background writer; count rows, merge duplicates."""
    swallowed = _Swallow(parser.layout, records.delimiter)
    email_at = parser.email_at
    chunk_rows = PG_CHUNK_ROWS if writer.engine.dialect.name == "postgresql" else CHUNK_ROWS
    chunk: dict[str, _Row] = {}
    in_chunk = 0
    with _BackgroundWriter(writer) as background:
        while True:
            line = records.next_line
            try:
                row = records.read()
            except StopIteration:
                break
            except csv.Error as error:
                report.total_rows += 1
                reject(Rejection(line, None, f"unreadable CSV ({error}): an unclosed quote?"))
                records.read_again_after(line)
                continue
            if records.last_line > line and swallowed(records.continuation()):
                report.total_rows += 1
                opened = _quote_opened(row, line)
                reject(_unclosed_quote(row, email_at, line, opened, records.last_line))
                records.read_again_after(line, opened)
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            report.total_rows += 1
            parsed = parser.parse(row, line)
            if isinstance(parsed, Rejection):
                reject(parsed)
            else:
                earlier = chunk.get(parsed.email)
                if earlier is None:
                    chunk[parsed.email] = parsed
                else:
                    earlier.merge(parsed)
                    report.duplicates_merged += 1
            in_chunk += 1
            if in_chunk >= chunk_rows:
                background.write(chunk)
                chunk, in_chunk = {}, 0
                advance()
        background.write(chunk)
