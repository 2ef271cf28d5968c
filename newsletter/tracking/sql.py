"""Small dialect helpers for the room's hot statements (SQLite and PostgreSQL, same results).

``col IN (:a, :b, …)`` with a thousand ids costs SQLAlchemy a re-render of the statement and a
bound parameter per id on every execution. :class:`ByIds` binds ONE parameter instead: a JSON
array read with ``json_each`` on SQLite, an array compared with ``= ANY`` on PostgreSQL. The
statement is built once per dialect and its compiled form cached.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, Connection, String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Executable

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
    return column == any_(bindparam(name, type_=ARRAY(BigInteger())))


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
            values[key] = json.dumps(ids) if name == "sqlite" else ids
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
        packed = conn.exec_driver_sql(_SQLITE_OWNERS, (json.dumps(sorted(ids)),)).scalar()
        return {row[0]: (row[1], row[2]) for row in _loads(packed or "[]")}
    return {did: (cid, sid) for did, cid, sid in conn.exec_driver_sql(_PG_OWNERS, (sorted(ids),))}


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
        packed = conn.exec_driver_sql(_SQLITE_SENT, (json.dumps(sorted(ids)),)).scalar()
        return {row[0]: (row[1], row[2], _sqlite_time(row[3])) for row in _loads(packed or "[]")}
    return {did: (cid, sid, sent.astimezone(timezone.utc) if sent else None)
            for did, cid, sid, sent in conn.exec_driver_sql(_PG_SENT, (sorted(ids),))}


def _sqlite_time(text: str | None) -> datetime | None:
    """SQLAlchemy's SQLite text form of a UTC time, back to an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc) if text else None


def _loads(text: str) -> Any:
    try:
        import orjson

        return orjson.loads(text)
    except ImportError:  # pragma: no cover - depends on the environment
        return json.loads(text)


# --- the events insert, lean ------------------------------------------------------------------

EVENT_COLUMNS = ("event_key", "type", "source", "campaign_id", "delivery_id", "subscriber_id", "link_id",
                 "is_machine", "machine_reason", "occurred_at", "ip_prefix", "user_agent", "data")
_SQLITE_CHUNK = 2000  # 13 parameters a row, SQLite allows 32,766 in one statement
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy's DateTime stores a time on SQLite
_PG_INSERT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    "SELECT k, t, s, c, d, sub, l, m, r, o, ip, ua, CAST(j AS json) FROM unnest("
    "%s::varchar[], %s::varchar[], %s::varchar[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
    "%s::boolean[], %s::varchar[], %s::timestamptz[], %s::varchar[], %s::varchar[], %s::text[]) "
    "AS v(k, t, s, c, d, sub, l, m, r, o, ip, ua, j) "
    "ON CONFLICT (event_key) DO NOTHING RETURNING event_key"
)


@lru_cache(maxsize=128)
def _sqlite_insert(rows: int, returning: bool = True) -> str:
    values = ", ".join(["(" + ", ".join(["?"] * len(EVENT_COLUMNS)) + ")"] * rows)
    return (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES {values} "
            + ("ON CONFLICT (event_key) DO NOTHING RETURNING event_key" if returning else ""))


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    try:  # orjson, when installed, is several times faster; both read back the same
        import orjson

        return orjson.dumps(value).decode()
    except ImportError:  # pragma: no cover - depends on the environment
        return json.dumps(value, separators=(",", ":"))
    except TypeError:  # what orjson refuses (an int beyond 64 bits): the standard library's way
        return json.dumps(value, separators=(",", ":"), default=str)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column; attach a time zone first")
    return value.astimezone(timezone.utc)


def insert_events(db: Db, rows: list[dict[str, Any]], *, new_keys: bool = False) -> list[str]:
    """Insert ``events`` rows (dicts keyed by column; ``data`` a JSON-able dict or absent) in one
    statement. With ``new_keys`` (the webhook: SendGrid resends), keys already stored are skipped
    and the keys inserted returned; without (our own fresh keys), a plain insert, ``[]`` returned:
    on SQLite each row of a RETURNING is one more step, and each step hands the GIL over.

    Why not ``insert(events)`` with the rows: SQLAlchemy then binds thirteen parameters a row
    one by one through the column types (a third of a webhook post's time), and on PostgreSQL
    sends 13,000 named parameters for 1,000 rows, which psycopg takes ~100 ms to prepare. Here
    the values are prepared once, as SQLAlchemy would store them (times in its SQLite text
    format, UTC; JSON text), and PostgreSQL gets thirteen arrays to ``unnest``.
    """
    if not rows:
        return []
    conn = db if isinstance(db, Connection) else db.connection()
    name = conn.dialect.name
    if name == "postgresql":
        columns: list[list[Any]] = [[] for _ in EVENT_COLUMNS]  # (the RETURNING costs nothing here)
        for row in rows:
            for i, column in enumerate(EVENT_COLUMNS):
                value = row.get(column)
                if column == "occurred_at":
                    value = _utc(value)
                elif column == "data":
                    value = _dumps(value)
                columns[i].append(value)
        keys = [key for (key,) in conn.exec_driver_sql(_PG_INSERT, tuple(columns)).all()]
        return keys if new_keys else []
    if name != "sqlite":  # pragma: no cover - the project supports these two stores only
        raise NotImplementedError(f"no events insert for {name}")
    inserted: list[str] = []
    texts: dict[datetime, str] = {}  # many events of a post share a time

    def text(value: datetime) -> str:
        found = texts.get(value)
        if found is None:
            found = texts[value] = _utc(value).strftime(_SQLITE_TIME)
        return found

    for start in range(0, len(rows), _SQLITE_CHUNK):
        chunk = rows[start:start + _SQLITE_CHUNK]
        params: list[Any] = []
        extend = params.extend
        for row in chunk:
            extend((row["event_key"], row["type"], row["source"], row.get("campaign_id"), row.get("delivery_id"),
                    row.get("subscriber_id"), row.get("link_id"), 1 if row.get("is_machine") else 0,
                    row.get("machine_reason"), text(row["occurred_at"]), row.get("ip_prefix"),
                    row.get("user_agent"), _dumps(row.get("data"))))
        result = conn.exec_driver_sql(_sqlite_insert(len(chunk), new_keys), tuple(params))
        if new_keys:
            inserted.extend(key for (key,) in result.all())
    return inserted
