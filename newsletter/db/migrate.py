"""Create or upgrade the store with Alembic. Idempotent: running it twice changes nothing."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# APScheduler keeps its own table in the same database; migrations leave it alone.
FOREIGN_TABLES = frozenset({"apscheduler_jobs"})


# The models declare these references as foreign keys, and SQLite keeps them so. On PostgreSQL
# migration 0004 replaced them with delete triggers (the per-row check cost half of a ledger
# build); schema comparisons there must not ask for them back.
TRIGGER_KEPT_REFERENCES = frozenset({
    ("deliveries", "campaign_id"), ("deliveries", "subscriber_id"),
    ("events", "campaign_id"), ("events", "subscriber_id"), ("events", "delivery_id"),
})


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


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Bring the store to the newest schema; returns (revision before, revision after)."""
    before = current_revision(engine)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, current_revision(engine)
