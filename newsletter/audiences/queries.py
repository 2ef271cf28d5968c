"""The audiences room's hot statements, each with why it is shaped as it is.

An import of a million rows runs these once per chunk (2,000 rows on SQLite, 5,000 on
PostgreSQL). They are built here and compiled once per import and store (``import_stores``
compiles them to SQL text). Which store's ``insert`` is asked of ``db.dialect``
(``upsert_insert``), never picked here. The room's other hot statement, the suppression
insert, stays in ``suppression``: that module is the one writer of the table
(``tests/test_one_writer.py``), and its docstring says why it is shaped so.

Measured on 100,000 rows, SQLAlchemy's per-row parameter handling (and, on PostgreSQL,
psycopg parsing long multi-row VALUES statements) cost more than the database work: 5 s on
SQLite and 18 s on PostgreSQL. So the statements are SQLAlchemy constructs, but the rows travel
in bulk: a plain DB-API ``executemany`` on SQLite, one ``COPY`` on PostgreSQL.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import JSON, Boolean, Column, MetaData, String, Table, Text, and_, bindparam, case, func, or_, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from newsletter.audiences.import_rules import OPT_OUT_STATUSES
from newsletter.db.dialect import upsert_insert
from newsletter.db.models import Subscriber, SubscriberTag, Suppression

__all__ = [
    "INCOMING_TABLE",
    "NOT_ERASED",
    "SUBSCRIBER_COLUMNS",
    "lookup",
    "postgres_copy",
    "postgres_email_list",
    "postgres_incoming",
    "postgres_write",
    "sqlite_add_tags",
    "sqlite_email_list",
    "sqlite_ids",
    "sqlite_upsert",
    "subscriber_update",
]

_SUBSCRIBERS = cast(Table, Subscriber.__table__)
_TAGS = cast(Table, SubscriberTag.__table__)

#: The order of a row's values (``import_rules.plan_chunk`` builds tuples in it): positional
#: rows cost the driver nothing to map, where dicts cost SQLAlchemy a lookup per value.
SUBSCRIBER_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "timezone",
    "locale",
    "attributes",
    "status",
    "consent_source",
    "consent_at",
    "consent_text_version",
    "created_at",
    "updated_at",
    "status_changed_at",
)


def _constant(values: tuple[str, ...]) -> Any:
    """Fixed strings of ours rendered into the SQL text, so the only parameters are the rows'."""
    return bindparam(None, values, expanding=True, literal_execute=True)


def _slot(name: str) -> Any:
    """A positional parameter filled by executemany (the placeholder value lets it compile)."""
    return bindparam(name, None, type_=String, required=False)


#: An erased person's row is never written to again (the pre-read skips it; this guards the race
#: with a concurrent erasure).
NOT_ERASED = _SUBSCRIBERS.c.status.not_in(_constant(("erased",)))


# --- both stores ---------------------------------------------------------------------------------


def sqlite_email_list() -> Any:
    """A chunk's addresses as ONE JSON parameter read by ``json_each``: one parameter whatever
    the chunk's size, where ``IN (?, ?, …)`` would be re-rendered for every size."""
    return func.json_each(bindparam("emails", type_=Text)).table_valued("value")


def postgres_email_list() -> Any:
    """The same on PostgreSQL: ``json_array_elements_text`` of one JSON text parameter."""
    return func.json_array_elements_text(sql_cast(bindparam("emails", type_=Text), JSON)).table_valued("value")


def lookup(emails: Any) -> Any:
    """(email, subscriber id, status, suppression reason) of the chunk's addresses already known:
    ONE query answers both "stored?" and "suppressed?" for the whole chunk (two outer joins on
    the unique email indexes), so the rules (``plan_chunk``) run in Python without a round trip."""
    return (
        select(emails.c.value, Subscriber.id, Subscriber.status, Suppression.reason)
        .select_from(
            emails.outerjoin(Subscriber, Subscriber.email == emails.c.value).outerjoin(
                Suppression, Suppression.email == emails.c.value
            )
        )
        .where(or_(Subscriber.id.is_not(None), Suppression.id.is_not(None)))
    )


def subscriber_update(stmt: Any, attributes: Any) -> dict[str, Any]:
    """What ON CONFLICT (email) DO UPDATE writes into an existing subscriber: a value of the file
    only where it has one (``coalesce``), attributes merged (``attributes``: the store's JSON
    merge), and the status only ever lowered (active/pending → an opt-out), in SQL so a
    concurrent change between lookup and write is still respected."""
    c = _SUBSCRIBERS.c
    excluded = stmt.excluded
    lowered = and_(c.status.in_(_constant(("active", "pending"))), excluded.status.in_(_constant(OPT_OUT_STATUSES)))
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


# --- SQLite --------------------------------------------------------------------------------------


def sqlite_upsert() -> Any:
    """``INSERT … ON CONFLICT (email) DO UPDATE`` with one ``?`` per column, run as a plain DB-API
    ``executemany`` of the chunk's tuples (no SQLAlchemy per-row work); ``json_patch`` merges
    the attributes inside SQLite."""
    insert = upsert_insert("sqlite")
    stmt = insert(_SUBSCRIBERS).values({name: _slot(name) for name in SUBSCRIBER_COLUMNS})
    return stmt.on_conflict_do_update(
        index_elements=[_SUBSCRIBERS.c.email],
        set_=subscriber_update(stmt, func.json_patch(_SUBSCRIBERS.c.attributes, stmt.excluded.attributes)),
        where=NOT_ERASED,
    )


def sqlite_ids() -> Any:
    """The ids of the chunk's written addresses: sqlite3's executemany returns no rows, so they
    are read back in one query over the same one-parameter list."""
    emails = sqlite_email_list()
    return select(Subscriber.id, Subscriber.email).where(Subscriber.email.in_(select(emails.c.value)), NOT_ERASED)


def sqlite_add_tags() -> Any:
    """(subscriber id, tag) pairs by executemany; ``DO NOTHING`` leaves a tag already there alone."""
    insert = upsert_insert("sqlite")
    return insert(_TAGS).values(subscriber_id=_slot("subscriber_id"), tag=_slot("tag")).on_conflict_do_nothing()


# --- PostgreSQL ----------------------------------------------------------------------------------

INCOMING_TABLE = "subscribers_incoming"


def postgres_incoming() -> Table:
    """The session's temporary table a chunk is copied into: the subscriber columns typed as the
    model's, whether the lookup found the row stored, and its tags as an array. ``ON COMMIT
    DELETE ROWS``, so it is empty at the start of every chunk's transaction."""
    return Table(
        INCOMING_TABLE,
        MetaData(),
        *(Column(name, _SUBSCRIBERS.c[name].type) for name in SUBSCRIBER_COLUMNS),
        Column("existing", Boolean),
        Column("tags", ARRAY(_TAGS.c.tag.type)),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DELETE ROWS",
    )


def postgres_copy(incoming: Table) -> str:
    """``COPY … FROM STDIN``: the server reads COPY text (6 ms per 2,000 rows) where a JSON
    document cost 12 ms, and psycopg formats the rows in C."""
    return f"COPY {incoming.name} ({', '.join(incoming.c.keys())}) FROM STDIN"


def postgres_write(incoming: Table) -> Any:
    """ONE statement that writes both tables from the copied rows.

    A CTE ``fresh`` inserts the addresses the lookup did not find, without ``ON CONFLICT``, and
    their tags the same way (nobody else can have tagged a row this transaction has not
    committed): the ``ON CONFLICT`` arbitration of new rows and of their tags cost 6 ms per
    2,000 rows. A CTE ``written`` upserts the others (``ON CONFLICT (email) DO UPDATE … WHERE``
    not erased, attributes merged with JSONB ``||``), and their tags go in with ``ON CONFLICT
    DO NOTHING``. Tags join back on email to the rows the inserts returned, so an address that
    was not written gets none. If another writer stores a "new" address between the lookup and
    this insert, the unique violation rolls the chunk back and the writer runs it again with
    every row through ``ON CONFLICT`` (``import_stores.PostgresStore.lost_race``)."""
    insert = upsert_insert("postgresql")
    table, tags = _SUBSCRIBERS, _TAGS
    values = [incoming.c[name] for name in SUBSCRIBER_COLUMNS]
    fresh = (
        insert(table)
        .from_select(list(SUBSCRIBER_COLUMNS), select(*values).where(incoming.c.existing.is_(False)))
        .returning(table.c.id, table.c.email)
        .cte("fresh")
    )
    stmt = insert(table).from_select(list(SUBSCRIBER_COLUMNS), select(*values).where(incoming.c.existing.is_(True)))
    attributes = sql_cast(sql_cast(table.c.attributes, JSONB).op("||")(sql_cast(stmt.excluded.attributes, JSONB)), JSON)
    written = (
        stmt.on_conflict_do_update(
            index_elements=[table.c.email],
            set_=subscriber_update(stmt, attributes),
            where=NOT_ERASED,
        )
        .returning(table.c.id, table.c.email)
        .cte("written")
    )

    def tag_rows(cte: Any) -> Any:
        return select(cte.c.id, func.unnest(incoming.c.tags)).join_from(cte, incoming, incoming.c.email == cte.c.email)

    pair = ["subscriber_id", "tag"]
    fresh_tags = insert(tags).from_select(pair, tag_rows(fresh)).cte("fresh_tags")
    return insert(tags).from_select(pair, tag_rows(written)).on_conflict_do_nothing().add_cte(fresh_tags)
