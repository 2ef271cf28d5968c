"""The tracking room's hot statements, each named, each with why it is shaped as it is.

The pixel, the redirect and the webhook run these for every open, click and provider event, so
each is built once (SQLAlchemy compiles it once per store and caches that) or written as raw
SQL where SQLAlchemy's own row handling was measured to cost more than the query
(bench/RESULTS.md). Which store is in use, and the form of an id list for it, are asked of
:mod:`newsletter.db.dialect`; nothing here tests a dialect's name.

- :class:`ByIds`: a statement with "column is one of these ids" bound as ONE parameter
  (:func:`newsletter.db.dialect.id_list_param`), built once per store.
- Reads: :data:`LINKS_AT`, :data:`CAMPAIGN_LINKS`, :data:`RECENT_CLICKS`, :data:`STORED_CLICKS`,
  :data:`SEND_LOG_CAMPAIGNS`, :data:`LEDGER_BY_ADDRESS`, :data:`SOFT_BOUNCES`,
  :func:`delivery_owners`, :func:`delivery_times`.
- The one write every event takes: :func:`insert_event_rows` (and :func:`insert_events`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Connection, Result, bindparam, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Executable

from newsletter.db.bulk import copy_rows
from newsletter.db.dialect import SUPPORTED, for_store, id_list_param, is_postgres, json_array_literal, pg_array_literal
from newsletter.db.models import CampaignLink, Delivery, Event, SendLog, Subscriber, UTCDateTime
from newsletter.tracking.jsontext import dump_without_nul, texts_without_nul

Db = Session | Connection


class ByIds:
    """A statement with one or more "column IN <ids>" conditions, each bound as one parameter.

    ``build(in_)`` makes the statement, calling ``in_(column, name)`` for each such condition;
    ``execute(db, name=ids, …, other=value)`` runs the form for the store in use. Why: ``col IN
    (:a, :b, …)`` with a thousand ids costs SQLAlchemy a re-render and a parameter per id on
    every execution (:mod:`newsletter.db.dialect`)."""

    def __init__(self, build: Callable[[Callable[[Any, str], ColumnElement[bool]]], Executable]) -> None:
        names: set[str] = set()

        def form(dialect: str) -> Executable:
            id_in = id_list_param(dialect)

            def in_(column: Any, name: str) -> ColumnElement[bool]:
                names.add(name)
                return id_in(column, name=name)

            return build(in_)

        self._forms = {dialect: form(dialect) for dialect in SUPPORTED}
        self._names = frozenset(names)

    def execute(self, db: Db, **params: Any) -> Result[*tuple[Any, ...]]:
        postgres = is_postgres(db)
        values = dict(params)
        for key in self._names:
            ids = sorted(set(values[key]))
            values[key] = pg_array_literal(ids) if postgres else json_array_literal(ids)
        return db.execute(for_store(self._forms, db), values)


# --- reads: built once, compiled once per store ------------------------------------------------

_EVENTS = Event.__table__  # Core statements on the table: no ORM rows on the hot paths
_LINKS = CampaignLink.__table__

#: The redirect without a link cache: the links of these campaigns at these positions (a
#: handful of values: an expanding ``IN`` is as cheap as one parameter here).
LINKS_AT = select(_LINKS.c.campaign_id, _LINKS.c.position, _LINKS.c.id, _LINKS.c.url, _LINKS.c.kind).where(
    _LINKS.c.campaign_id.in_(bindparam("campaigns", expanding=True)),
    _LINKS.c.position.in_(bindparam("positions", expanding=True)),
)
#: Every link of these campaigns (``ids``): the recorder's link cache and the webhook's clicks.
#: Links are written once, when the campaign is created, so a whole campaign is read at once.
CAMPAIGN_LINKS = ByIds(
    lambda in_: select(_LINKS.c.campaign_id, _LINKS.c.position, _LINKS.c.id, _LINKS.c.url, _LINKS.c.kind).where(
        in_(_LINKS.c.campaign_id, "ids")
    )
)
#: The redirect's bursts: the stored clicks of these messages (``ids``) between ``since`` and
#: ``until``; without ``data`` (our own clicks always carry their link).
RECENT_CLICKS = ByIds(
    lambda in_: select(_EVENTS.c.id, _EVENTS.c.delivery_id, _EVENTS.c.link_id, _EVENTS.c.occurred_at).where(
        in_(_EVENTS.c.delivery_id, "ids"),
        _EVENTS.c.type == "click",
        _EVENTS.c.occurred_at >= bindparam("since", type_=UTCDateTime()),
        _EVENTS.c.occurred_at <= bindparam("until", type_=UTCDateTime()),
    )
)
#: The webhook's bursts: as :data:`RECENT_CLICKS`, with ``data``, whose ``url`` names the link
#: of a provider's click we could not map to a registered link.
STORED_CLICKS = ByIds(
    lambda in_: select(
        _EVENTS.c.id, _EVENTS.c.delivery_id, _EVENTS.c.link_id, _EVENTS.c.data, _EVENTS.c.occurred_at
    ).where(
        in_(_EVENTS.c.delivery_id, "ids"),
        _EVENTS.c.type == "click",
        _EVENTS.c.occurred_at >= bindparam("since", type_=UTCDateTime()),
        _EVENTS.c.occurred_at <= bindparam("until", type_=UTCDateTime()),
    )
)
#: Provider events without our ``delivery_id``: which campaign sent these message ids. The send
#: log, because the ledger does not index its own ``message_id``.
SEND_LOG_CAMPAIGNS = select(SendLog.message_id, SendLog.campaign_id).where(
    SendLog.message_id.in_(bindparam("message_ids", expanding=True))
)
#: …then the ledger rows of these addresses in those campaigns: the unique (subscriber,
#: campaign) key names the row, whose message id the caller checks against the event's.
LEDGER_BY_ADDRESS = (
    select(
        Delivery.message_id,
        Subscriber.email,
        Delivery.id,
        Delivery.campaign_id,
        Delivery.subscriber_id,
        Delivery.sent_at,
    )
    .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
    .where(
        Subscriber.email.in_(bindparam("emails", expanding=True)),
        Delivery.campaign_id.in_(bindparam("campaigns", expanding=True)),
    )
)
_DELIVERED = _EVENTS.alias("delivered")
_LAST_DELIVERED = (
    select(func.max(_DELIVERED.c.occurred_at))
    .where(_DELIVERED.c.subscriber_id == _EVENTS.c.subscriber_id, _DELIVERED.c.type == "delivered")
    .scalar_subquery()
)
#: Soft bounces (``blocked``) per subscriber since their last ``delivered`` event (or ever): a
#: run of soft bounces suppresses an address, one delivery starts the count again.
SOFT_BOUNCES = (
    select(_EVENTS.c.subscriber_id, func.count())
    .where(
        _EVENTS.c.subscriber_id.in_(bindparam("subscribers", expanding=True)),
        _EVENTS.c.type == "blocked",
        or_(_LAST_DELIVERED.is_(None), _LAST_DELIVERED < _EVENTS.c.occurred_at),
    )
    .group_by(_EVENTS.c.subscriber_id)
)


def delivery_owners(db: Db, ids: set[int]) -> dict[int, tuple[int, int]]:
    """``delivery id → (campaign id, subscriber id)`` for the ids that exist.

    On SQLite the rows come back as ONE row (a JSON array built by SQLite): every row a cursor
    steps through releases and re-takes the GIL, and in the web app's writer thread each
    re-take waits for the event loop, so fifty rows cost fifty waits. PostgreSQL rows arrive
    together anyway.
    """
    if not ids:
        return {}
    conn = db if isinstance(db, Connection) else db.connection()
    if not is_postgres(conn):
        packed = conn.exec_driver_sql(_SQLITE_OWNERS, (json_array_literal(sorted(ids)),)).scalar()
        return {row[0]: (row[1], row[2]) for row in _loads(packed or "[]")}
    return {did: (cid, sid) for did, cid, sid in _pg_rows(conn, _PG_OWNERS, ids)}


#: :func:`delivery_owners` and :func:`delivery_times`, raw: on SQLite one JSON row built by SQLite
#: (the docstring above says why), on PostgreSQL plain tuples from psycopg's cursor (:func:`_pg_rows`).
_SQLITE_OWNERS = (
    "SELECT json_group_array(json_array(id, campaign_id, subscriber_id)) FROM deliveries "
    "WHERE id IN (SELECT value FROM json_each(?))"
)
_PG_OWNERS = "SELECT id, campaign_id, subscriber_id FROM deliveries WHERE id = ANY(%s::bigint[])"
_SQLITE_SENT = (
    "SELECT json_group_array(json_array(id, campaign_id, subscriber_id, sent_at)) FROM deliveries "
    "WHERE id IN (SELECT value FROM json_each(?))"
)
_PG_SENT = "SELECT id, campaign_id, subscriber_id, sent_at FROM deliveries WHERE id = ANY(%s::bigint[])"


def delivery_times(db: Db, ids: set[int]) -> dict[int, tuple[int, int, datetime | None]]:
    """Like :func:`delivery_owners`, with ``sent_at`` (aware, UTC) for timing clicks."""
    if not ids:
        return {}
    conn = db if isinstance(db, Connection) else db.connection()
    if not is_postgres(conn):
        packed = conn.exec_driver_sql(_SQLITE_SENT, (json_array_literal(sorted(ids)),)).scalar()
        return {row[0]: (row[1], row[2], _sqlite_time(row[3])) for row in _loads(packed or "[]")}
    return {
        did: (cid, sid, sent.astimezone(timezone.utc) if sent else None)
        for did, cid, sid, sent in _pg_rows(conn, _PG_SENT, ids)
    }


def _pg_rows(conn: Connection, sql: str, ids: set[int]) -> list[tuple[Any, ...]]:
    """Rows of a read keyed by ids, through psycopg's own cursor: plain tuples made in C, without
    SQLAlchemy's result rows (a thousand of them per webhook post)."""
    driver = conn.connection.driver_connection
    assert driver is not None  # an open connection always has its driver's connection
    with driver.cursor() as cursor:
        rows: list[tuple[Any, ...]] = cursor.execute(sql, (pg_array_literal(sorted(ids)),)).fetchall()
    return rows


def _sqlite_time(text: str | None) -> datetime | None:
    """SQLAlchemy's SQLite text form of a UTC time, back to an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc) if text else None


def _loads(text: str) -> Any:
    return orjson.loads(text)


# --- the events insert, lean ------------------------------------------------------------------

EVENT_COLUMNS = (
    "event_key",
    "type",
    "source",
    "campaign_id",
    "delivery_id",
    "subscriber_id",
    "link_id",
    "is_machine",
    "machine_reason",
    "occurred_at",
    "ip_prefix",
    "user_agent",
    "data",
)
#: An events row as :func:`insert_event_rows` takes it: the values of EVENT_COLUMNS in that order,
#: ``occurred_at`` an aware datetime, ``data`` a JSON-able dict (or ``None``: SQL NULL).
EventRow = tuple[Any, ...]
_TIME, _DATA = EVENT_COLUMNS.index("occurred_at"), EVENT_COLUMNS.index("data")
_SQLITE_CHUNK = 2000  # 13 parameters a row, SQLite allows 32,766 in one statement
_COLUMNS = ", ".join(EVENT_COLUMNS)
# PostgreSQL: rows are COPYed into a temporary table of the session, then moved in ONE statement
# that skips keys already stored. COPY's rows are formatted by psycopg's C code; binding the
# same rows as parameters (13 arrays to ``unnest``, or 13,000 scalars) costs psycopg 15-60 ms of
# Python per 1,000 rows, most of it escaping quotes in the JSON and the user agents.
_PG_STAGE = (  # made by newsletter.db.bulk.copy_rows when the session has none yet
    "CREATE TEMPORARY TABLE IF NOT EXISTS events_incoming (event_key varchar(200), type varchar(30), "
    "source varchar(20), campaign_id bigint, delivery_id bigint, subscriber_id bigint, link_id bigint, "
    "is_machine boolean, machine_reason varchar(100), occurred_at timestamptz, ip_prefix varchar(64), "
    "user_agent varchar(500), data json) ON COMMIT DELETE ROWS"
)
_PG_COPY = f"COPY events_incoming ({_COLUMNS}) FROM STDIN"
_PG_MOVE = (  # emptied as it is read: a second batch in the same transaction starts clean
    f"WITH moved AS (DELETE FROM events_incoming RETURNING {_COLUMNS}) "
    f"INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM moved "
    "ON CONFLICT (event_key) DO NOTHING RETURNING event_key"
)
#: The web app's batches of opens and clicks (up to a few hundred rows) go as ONE JSON parameter
#: read by ``json_to_recordset``: one round trip instead of COPY's three, which is what a batch
#: waits on; psycopg sends the text as it is (orjson made it, in C).
_PG_JSON = (
    f"INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM json_to_recordset(%s::json) AS v("
    "event_key varchar, type varchar, source varchar, campaign_id bigint, delivery_id bigint, subscriber_id bigint, "
    "link_id bigint, is_machine boolean, machine_reason varchar, occurred_at timestamptz, ip_prefix varchar, "
    "user_agent varchar, data json) ON CONFLICT (event_key) DO NOTHING RETURNING event_key"
)
#: Below this many rows one INSERT with bound values; up to _PG_COPY_FROM, the JSON form; from
#: there (a webhook post), COPY, whose server side is the cheapest for a thousand rows.
_PG_JSON_FROM = 8
_PG_COPY_FROM = 512


@lru_cache(maxsize=128)
def _sqlite_insert(rows: int, skip_stored: bool) -> str:
    values = ", ".join(["(" + ", ".join(["?"] * len(EVENT_COLUMNS)) + ")"] * rows)
    return f"INSERT INTO events ({_COLUMNS}) VALUES {values}" + (
        " ON CONFLICT (event_key) DO NOTHING" if skip_stored else ""
    )


@lru_cache(maxsize=_PG_JSON_FROM)
def _pg_insert(rows: int) -> str:
    values = ", ".join(["(" + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ")"] * rows)
    return f"INSERT INTO events ({_COLUMNS}) VALUES {values} ON CONFLICT (event_key) DO NOTHING RETURNING event_key"


#: The text columns of an events row (by position); ``data`` is cleaned as JSON text.
_TEXT_AT = tuple(
    i
    for i, c in enumerate(EVENT_COLUMNS)
    if c in ("event_key", "type", "source", "machine_reason", "ip_prefix", "user_agent")
)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column; attach a time zone first")
    return value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)


_TEXTS: dict[datetime, str] = {}
_TEXTS_KEPT = 65536


def _sqlite_text(value: datetime) -> str:
    """SQLAlchemy's SQLite text for a UTC time (``%Y-%m-%d %H:%M:%S.%f``, the year in 4 digits)."""
    return _utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


def insert_events(db: Db, rows: list[dict[str, Any]], *, new_keys: bool = False) -> list[str]:
    """:func:`insert_event_rows` for rows given as dicts keyed by column (``data`` may be absent)."""
    machine = EVENT_COLUMNS.index("is_machine")
    tuples = [
        tuple(bool(row.get(c)) if i == machine else row.get(c) for i, c in enumerate(EVENT_COLUMNS)) for row in rows
    ]
    return insert_event_rows(db, tuples, new_keys=new_keys)


def insert_event_rows(db: Db, rows: list[EventRow], *, new_keys: bool = False) -> list[str]:
    """Insert ``events`` rows (:data:`EventRow` tuples) in one statement. With ``new_keys`` (the
    webhook: SendGrid resends), keys already stored are skipped and the keys inserted returned;
    without (our own fresh keys), a plain insert, ``[]`` returned.

    Why not ``insert(events)`` with the rows: SQLAlchemy then binds thirteen parameters a row
    one by one through the column types (a third of a webhook post's time), and on PostgreSQL
    sends 13,000 named parameters for 1,000 rows, which psycopg takes ~100 ms to prepare. Here
    the values are prepared once, as SQLAlchemy would store them (times in its SQLite text
    format, UTC; JSON text): SQLite gets one multi-row ``VALUES`` (:func:`_sqlite_insert_rows`),
    PostgreSQL a ``COPY`` into a temporary table and one ``INSERT … SELECT … ON CONFLICT
    (event_key) DO NOTHING RETURNING`` (:data:`_PG_MOVE`).
    """
    if not rows:
        return []
    rows = texts_without_nul(rows, _TEXT_AT)  # and ``data`` as it is dumped: NUL is never stored
    conn = db if isinstance(db, Connection) else db.connection()
    if is_postgres(conn):
        keys = _pg_insert_rows(conn, rows)
        return keys if new_keys else []
    return _sqlite_insert_rows(conn, rows, new_keys)


def _pg_insert_rows(conn: Connection, rows: list[EventRow]) -> list[str]:
    if _PG_JSON_FROM <= len(rows) < _PG_COPY_FROM:
        payload = dump_without_nul(
            [
                dict(zip(EVENT_COLUMNS, (*row[:_TIME], _utc(row[_TIME]), *row[_TIME + 1 :]), strict=False))
                for row in rows
            ]
        )
        return [key for (key,) in conn.exec_driver_sql(_PG_JSON, (payload,)).all()]
    prepared = [(*row[:_TIME], _utc(row[_TIME]), *row[_TIME + 1 : _DATA], dump_without_nul(row[_DATA])) for row in rows]
    if len(prepared) < _PG_JSON_FROM:
        flat = tuple(value for row in prepared for value in row)
        return [key for (key,) in conn.exec_driver_sql(_pg_insert(len(prepared)), flat).all()]
    copy_rows(conn, _PG_COPY, prepared, create=_PG_STAGE)  # in the same transaction
    return [key for (key,) in conn.exec_driver_sql(_PG_MOVE).all()]  # seen by SQLAlchemy's events


def _sqlite_insert_rows(conn: Connection, rows: list[EventRow], new_keys: bool) -> list[str]:
    """One multi-row ``INSERT … ON CONFLICT DO NOTHING`` per 2,000 rows, without ``RETURNING``:
    SQLite hands each returned row over in a step of its own, and the sqlite3 module releases
    and re-takes the GIL around every step, so with a second thread busy in Python a thousand
    returned keys could each wait for it (up to 5 ms) while this thread holds the write lock.
    Instead the rows this statement inserted are read back by rowid, in ONE row: SQLite gives
    new rows the next rowids in order, and nobody else writes while this transaction does."""
    inserted: list[str] = []
    texts = _TEXTS  # the events of a post (and of the next) share times
    if len(texts) > _TEXTS_KEPT:
        texts.clear()
    for start in range(0, len(rows), _SQLITE_CHUNK):
        chunk = rows[start : start + _SQLITE_CHUNK]
        params: list[Any] = []
        extend = params.extend
        for row in chunk:
            when = row[_TIME]
            text = texts.get(when)
            if text is None:
                text = texts[when] = _sqlite_text(when)
            extend(row[:_TIME])
            extend((text, row[10], row[11], dump_without_nul(row[_DATA])))
        result = conn.exec_driver_sql(_sqlite_insert(len(chunk), new_keys), tuple(params))
        count, last = result.rowcount, result.lastrowid
        if new_keys and count:
            packed = conn.exec_driver_sql(_SQLITE_KEYS_BETWEEN, (last - count, last)).scalar()
            keys = _loads(packed or "[]")
            if len(keys) != count:  # pragma: no cover - rowids are assigned in order (SQLite docs)
                raise RuntimeError(
                    f"expected {count} new events between rowids {last - count} and {last}, found {len(keys)}"
                )
            inserted.extend(keys)
    return inserted


#: The keys an insert just added, read back by rowid as ONE row (:func:`_sqlite_insert_rows` says why).
_SQLITE_KEYS_BETWEEN = "SELECT json_group_array(event_key) FROM events WHERE id > ? AND id <= ?"
