"""The store's schema, with Alembic: create it, upgrade it, and say where a store stands.

Only ``newsletter init`` (and ``newsletter db upgrade``) change an existing store's schema
(:func:`upgrade`). Every other way in goes through :func:`ensure_current`: an empty store (a new
SQLite file, a new PostgreSQL database) is created at the newest revision, since there is
nothing in it to surprise anyone; a store at an older revision, or at one this code does not
know (a newer program made it), is refused in one line that says what to run. Upgrading a
production database is a step its owner takes, with a backup, not a side effect of ``campaign
list``. Idempotent: running :func:`upgrade` twice changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from newsletter.db.dialect import dialect_name, is_postgres
from newsletter.db.filemode import store_path
from newsletter.errors import UserError

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# APScheduler keeps its own table in the same database; migrations leave it alone.
FOREIGN_TABLES = frozenset({"apscheduler_jobs"})
VERSION_TABLE = "alembic_version"  # Alembic's default, where it keeps the store's revision


# The models declare these references as foreign keys, and SQLite keeps them so. On PostgreSQL
# migration 0004 replaced them with delete triggers (the per-row check cost half of a ledger
# build); schema comparisons there must not ask for them back.
TRIGGER_KEPT_REFERENCES = frozenset(
    {
        ("deliveries", "campaign_id"),
        ("deliveries", "subscriber_id"),
        ("events", "campaign_id"),
        ("events", "subscriber_id"),
        ("events", "delivery_id"),
    }
)


def include_object_for(dialect: str):  # type: ignore[no-untyped-def]
    """Alembic filter for ``dialect``: compare and migrate only the product's own tables, and on
    PostgreSQL leave out the references its triggers keep."""

    def include_object(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
        if type_ == "table":
            return name not in FOREIGN_TABLES
        if type_ == "foreign_key_constraint" and dialect == "postgresql":
            return (obj.table.name, *obj.column_keys) not in TRIGGER_KEPT_REFERENCES
        return True

    return include_object


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


@cache
def _scripts() -> ScriptDirectory:
    """Read once per process: every command asks for the head, and parsing the scripts costs more
    than the query that reads the store's revision."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str | None:
    return _scripts().get_current_head()


def known_revisions() -> frozenset[str]:
    """Every revision this code can migrate from (a store at any other one was made by a newer program)."""
    return frozenset(script.revision for script in _scripts().walk_revisions())


def _revision_of(connection: Connection) -> str | None:
    """The revision in Alembic's ``alembic_version`` table, read directly: Alembic's own reader
    (``MigrationContext``) logs two INFO lines each time ("Context impl …", "Will assume …"),
    which a worker printed above every start, and above the one line that refuses a store. Two
    rows (branches, which this code never makes) read as one unknown revision."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return ",".join(sorted(rows)) or None


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return _revision_of(connection)


State = Literal["current", "empty", "behind", "newer", "unversioned"]
INIT = "newsletter init"
#: PostgreSQL advisory lock taken while the schema changes: two processes starting together on
#: an empty database (a worker and the scheduler) would otherwise both create the tables.
SCHEMA_LOCK_KEY = 0x6E6C_5343  # "nlSC"


@dataclass(frozen=True)
class SchemaStatus:
    """Where a store stands against this code's migrations (``newsletter db status``)."""

    database: str  # the store's address, password hidden
    revision: str | None  # the store's, None when it has none
    head: str | None  # the newest this code knows
    state: State

    def refusal(self) -> UserError:
        """The one line that stops a command on a store it must not use as it is."""
        at = f"the store {self.database} is at schema revision {self.revision}"
        if self.state == "newer":
            return UserError(
                f"{at}, made by a newer newsletter (this one knows revisions up to {self.head}): "
                "upgrade the program; the store is left as it is"
            )
        if self.state == "unversioned":
            return UserError(
                f"the store {self.database} has tables but no newsletter schema revision; "
                f"this newsletter needs revision {self.head}: check NEWSLETTER_DATABASE_URL, "
                f"or run `{INIT}` to create the newsletter's tables in it"
            )
        return UserError(
            f"{at}; this newsletter needs revision {self.head}: run `{INIT}` to upgrade it (back it up first)"
        )


def _state(connection: Connection, revision: str | None) -> State:
    if revision is None:
        own = set(inspect(connection).get_table_names()) - FOREIGN_TABLES - {VERSION_TABLE}
        return "unversioned" if own else "empty"
    if revision == head_revision():
        return "current"
    return "behind" if revision in known_revisions() else "newer"


def schema_status(engine: Engine) -> SchemaStatus:
    """Read the store's revision and compare it with this code's; changes nothing (a SQLite file
    that does not exist yet is said to be empty, not created by connecting to it)."""
    database = engine.url.render_as_string(hide_password=True)
    if dialect_name(engine) == "sqlite" and (path := store_path(engine.url)) and not Path(path).exists():
        return SchemaStatus(database, None, head_revision(), "empty")
    with engine.connect() as connection:
        revision = _revision_of(connection)
        state = _state(connection, revision)
    return SchemaStatus(database, revision, head_revision(), state)


def ensure_current(engine: Engine) -> SchemaStatus:
    """The one rule for every command but ``init``: use a store at this code's revision, create an
    empty one, refuse anything else (:meth:`SchemaStatus.refusal`) without touching it."""
    status = schema_status(engine)
    if status.state == "current":
        return status
    if status.state != "empty":
        raise status.refusal()
    _, after = upgrade(engine)
    log.info("created the store %s at schema revision %s", status.database, after)
    return SchemaStatus(status.database, after, status.head, "current")


def _lock_schema(connection: Connection) -> None:
    """Hold the store's schema for this transaction, so that processes starting together on an
    empty store run the migrations one after the other; the later ones then find nothing to do.
    SQLite's driver would begin a transaction only before the first INSERT, leaving the CREATEs
    unguarded (two processes both read "no revision": "table articles already exists"); so the
    write lock is taken first, and the others wait for it (``busy_timeout``)."""
    if is_postgres(connection):
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK_KEY})
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the store to ``revision`` (the newest by default); returns (revision before, revision
    after). A store at a revision this code does not know is refused, never downgraded. The
    change holds the schema's lock (:func:`_lock_schema`): a second process starting at the same
    moment waits, then finds the work done."""
    config = alembic_config()
    with engine.begin() as connection:
        _lock_schema(connection)
        before = _revision_of(connection)
        if before is not None and before not in known_revisions():
            raise SchemaStatus(
                engine.url.render_as_string(hide_password=True), before, head_revision(), "newer"
            ).refusal()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return before, current_revision(engine)
