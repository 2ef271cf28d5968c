"""Alembic environment. Run through ``newsletter init`` (db.migrate), which passes a connection."""

from __future__ import annotations

from alembic import context

from newsletter.db.dialect import dialect_name
from newsletter.db.migrate import include_object_for
from newsletter.db.models import Base


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        from newsletter.db.engine import make_engine

        url = context.config.get_main_option("sqlalchemy.url")
        if url is None:
            raise RuntimeError("alembic: no connection passed and no sqlalchemy.url configured")
        connection = make_engine(url).connect()
    store = dialect_name(connection)
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=store == "sqlite",
        include_object=include_object_for(store),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
