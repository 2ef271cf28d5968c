"""Small dialect helpers for the room's hot statements (SQLite and PostgreSQL, same results).

``col IN (:a, :b, …)`` with a thousand ids costs SQLAlchemy a re-render of the statement and a
bound parameter per id on every execution. :class:`ByIds` binds ONE parameter instead: a JSON
array read with ``json_each`` on SQLite, an array compared with ``= ANY`` on PostgreSQL. The
statement is built once per dialect and its compiled form cached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import BigInteger, Connection, String, any_, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Executable

from newsletter.db.bulk import copy_rows
from newsletter.db.dialect import pg_array_literal

Db = Session | Connection


def dialect_name(db: Db) -> str:
    return db.dialect.name if isinstance(db, Connection) else db.get_bind().dialect.name


def dialect_insert(db: Db):  # type: ignore[no-untyped-def]
    """``insert`` with ``ON CONFLICT`` for the store in use (same API on both dialects)."""
    name = dialect_name(db)
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the project supports these two stores only
        raise NotImplementedError(f"no upsert for {name}")
    return insert


def _sqlite_in(column: Any, name: str) -> ColumnElement[bool]:
    values = func.json_each(bindparam(name, type_=String())).table_valued("value")
    return column.in_(select(values.c.value))


def _postgresql_in(column: Any, name: str) -> ColumnElement[bool]:
    # The ids travel as ONE text literal ('{1,2,3}') cast on the server: psycopg adapts a Python
    # list element by element in Python, which for a thousand ids costs more than the query.
    return column == any_(cast(bindparam(name, type_=String()), ARRAY(BigInteger())))


class ByIds:
    """A statement with one or more "column IN <ids>" conditions, each bound as one parameter.

    ``build(in_)`` makes the statement, calling ``in_(column, name)`` for each such condition;
    ``execute(db, name=ids, …, other=value)`` runs the form for the store in use."""

    def __init__(self, build: Callable[[Callable[[Any, str], ColumnElement[bool]]], Executable]) -> None:
        names: set[str] = set()

        def sqlite_in(column: Any, name: str) -> ColumnElement[bool]:
            names.add(name)
            return _sqlite_in(column, name)

        self._forms = {"sqlite": build(sqlite_in), "postgresql": build(_postgresql_in)}
        self._names = frozenset(names)

    def execute(self, db: Db, **params: Any):  # type: ignore[no-untyped-def]
        name = dialect_name(db)
        values = dict(params)
        for key in self._names:
            ids = sorted(set(values[key]))
            values[key] = _dump_ids(ids) if name == "sqlite" else pg_array_literal(ids)
        return db.execute(self._forms[name], values)


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
    if conn.dialect.name == "sqlite":
        packed = conn.exec_driver_sql(_SQLITE_OWNERS, (_dump_ids(sorted(ids)),)).scalar()
        return {row[0]: (row[1], row[2]) for row in _loads(packed or "[]")}
    return {did: (cid, sid) for did, cid, sid in _pg_rows(conn, _PG_OWNERS, ids)}


_SQLITE_OWNERS = ("SELECT json_group_array(json_array(id, campaign_id, subscriber_id)) FROM deliveries "
                  "WHERE id IN (SELECT value FROM json_each(?))")
_PG_OWNERS = "SELECT id, campaign_id, subscriber_id FROM deliveries WHERE id = ANY(%s::bigint[])"
_SQLITE_SENT = ("SELECT json_group_array(json_array(id, campaign_id, subscriber_id, sent_at)) FROM deliveries "
                "WHERE id IN (SELECT value FROM json_each(?))")
_PG_SENT = "SELECT id, campaign_id, subscriber_id, sent_at FROM deliveries WHERE id = ANY(%s::bigint[])"


def delivery_times(db: Db, ids: set[int]) -> dict[int, tuple[int, int, datetime | None]]:
    """Like :func:`delivery_owners`, with ``sent_at`` (aware, UTC) for timing clicks."""
    if not ids:
        return {}
    conn = db if isinstance(db, Connection) else db.connection()
    if conn.dialect.name == "sqlite":
        packed = conn.exec_driver_sql(_SQLITE_SENT, (_dump_ids(sorted(ids)),)).scalar()
        return {row[0]: (row[1], row[2], _sqlite_time(row[3])) for row in _loads(packed or "[]")}
    return {did: (cid, sid, sent.astimezone(timezone.utc) if sent else None)
            for did, cid, sid, sent in _pg_rows(conn, _PG_SENT, ids)}


def _pg_rows(conn: Connection, sql: str, ids: set[int]) -> list[tuple[Any, ...]]:
    """Rows of a read keyed by ids, through psycopg's own cursor: plain tuples made in C, without
    SQLAlchemy's result rows (a thousand of them per webhook post)."""
    with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        return cursor.execute(sql, (pg_array_literal(sorted(ids)),)).fetchall()


def _sqlite_time(text: str | None) -> datetime | None:
    """SQLAlchemy's SQLite text form of a UTC time, back to an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc) if text else None


def _dump_ids(ids: list[int]) -> str:
    return _dumps(ids) or "[]"


def _loads(text: str) -> Any:
    return orjson.loads(text)


# --- the events insert, lean ------------------------------------------------------------------

EVENT_COLUMNS = ("event_key", "type", "source", "campaign_id", "delivery_id", "subscriber_id", "link_id",
                 "is_machine", "machine_reason", "occurred_at", "ip_prefix", "user_agent", "data")
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
    return (f"INSERT INTO events ({_COLUMNS}) VALUES {values}"
            + (" ON CONFLICT (event_key) DO NOTHING" if skip_stored else ""))


@lru_cache(maxsize=_PG_JSON_FROM)
def _pg_insert(rows: int) -> str:
    values = ", ".join(["(" + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ")"] * rows)
    return (f"INSERT INTO events ({_COLUMNS}) VALUES {values} "
            "ON CONFLICT (event_key) DO NOTHING RETURNING event_key")


def _dumps(value: Any) -> str | None:
    """JSON text by orjson, several times faster than the standard library; what orjson refuses
    (an int beyond 64 bits) the standard library's way, which reads back the same."""
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), default=str)


# --- NUL: PostgreSQL text cannot hold it ----------------------------------------------------

#: ``\u0000`` in JSON text, as an escape: its backslash preceded by an even number of backslashes
#: (``\\u0000`` is a backslash followed by "u0000", left alone).
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
_JSON_NUL_BYTES = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def json_without_nul(text: str) -> str:
    r"""JSON text with every NUL character (the ``\u0000`` escape) taken out of its strings and keys.

    PostgreSQL's ``text``/``varchar`` cannot hold NUL and its ``json`` functions refuse to
    decode one (``UntranslatableCharacter``), so a value carrying one would fail the whole
    statement: for the webhook, a 500 and a batch SendGrid drops after a day of retries. Done on
    the text rather than by walking the value: linear, no recursion on deep input."""
    return _JSON_NUL.sub(r"\1", text) if "\\u0000" in text else text


def json_bytes_without_nul(body: bytes) -> bytes:
    """:func:`json_without_nul` for a raw body, before it is parsed."""
    return _JSON_NUL_BYTES.sub(rb"\1", body) if b"\\u0000" in body else body


def _dump_data(value: Any) -> str | None:
    text = _dumps(value)
    return json_without_nul(text) if text is not None else None


#: The text columns of an events row (by position); ``data`` is cleaned as JSON text.
_TEXT_AT = tuple(i for i, c in enumerate(EVENT_COLUMNS)
                 if c in ("event_key", "type", "source", "machine_reason", "ip_prefix", "user_agent"))


def _texts_without_nul(rows: list[EventRow]) -> list[EventRow]:
    """The rows with NUL removed from their text columns; the same list when none has one (the
    usual case, checked column by column in about 0.4 ms per 1,000 rows)."""
    for at in _TEXT_AT:
        column = [row[at] for row in rows]
        try:
            text = "".join(column)
        except TypeError:  # a NULL (or, from a careless caller, a number) among them
            text = "".join([v for v in column if v.__class__ is str])
        if "\x00" in text:
            return [tuple(v.replace("\x00", "") if v.__class__ is str else v for v in r) for r in rows]
    return rows


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
    tuples = [tuple(bool(row.get(c)) if i == machine else row.get(c) for i, c in enumerate(EVENT_COLUMNS))
              for row in rows]
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
    rows = _texts_without_nul(rows)  # and ``data`` as it is dumped: NUL is never stored (json_without_nul)
    conn = db if isinstance(db, Connection) else db.connection()
    name = conn.dialect.name
    if name == "postgresql":
        keys = _pg_insert_rows(conn, rows)
        return keys if new_keys else []
    if name != "sqlite":  # pragma: no cover - the project supports these two stores only
        raise NotImplementedError(f"no events insert for {name}")
    return _sqlite_insert_rows(conn, rows, new_keys)


def _pg_insert_rows(conn: Connection, rows: list[EventRow]) -> list[str]:
    if _PG_JSON_FROM <= len(rows) < _PG_COPY_FROM:
        payload = _dump_data([dict(zip(EVENT_COLUMNS, (*row[:_TIME], _utc(row[_TIME]), *row[_TIME + 1:])))
                              for row in rows])
        return [key for (key,) in conn.exec_driver_sql(_PG_JSON, (payload,)).all()]
    prepared = [(*row[:_TIME], _utc(row[_TIME]), *row[_TIME + 1:_DATA], _dump_data(row[_DATA])) for row in rows]
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
        chunk = rows[start:start + _SQLITE_CHUNK]
        params: list[Any] = []
        extend = params.extend
        for row in chunk:
            when = row[_TIME]
            text = texts.get(when)
            if text is None:
                text = texts[when] = _sqlite_text(when)
            extend(row[:_TIME])
            extend((text, row[10], row[11], _dump_data(row[_DATA])))
        result = conn.exec_driver_sql(_sqlite_insert(len(chunk), new_keys), tuple(params))
        count, last = result.rowcount, result.lastrowid
        if new_keys and count:
            packed = conn.exec_driver_sql(_SQLITE_KEYS_BETWEEN, (last - count, last)).scalar()
            keys = _loads(packed or "[]")
            if len(keys) != count:  # pragma: no cover - rowids are assigned in order (SQLite docs)
                raise RuntimeError(f"expected {count} new events between rowids {last - count} and {last}, "
                                   f"found {len(keys)}")
            inserted.extend(keys)
    return inserted


_SQLITE_KEYS_BETWEEN = "SELECT json_group_array(event_key) FROM events WHERE id > ? AND id <= ?"
