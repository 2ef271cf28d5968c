"""``db.dialect``: the one place that answers "which store, which upsert, which id list"."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import Engine, create_mock_engine, select

from newsletter.db import models, session_scope
from newsletter.db.dialect import (
    dialect_name,
    for_store,
    id_in,
    ids_literal,
    is_postgres,
    per_dialect,
    upsert_insert,
)


def _subscribers(engine: Engine, count: int) -> list[int]:
    now = datetime.now(timezone.utc)
    with session_scope(engine) as session:
        rows = [
            models.Subscriber(email=f"p{i}@example.test", status="active", created_at=now, updated_at=now)
            for i in range(count)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def test_names_the_store_from_engine_connection_and_session(engine: Engine) -> None:
    expected = engine.url.get_backend_name()
    with engine.connect() as conn, session_scope(engine) as session:
        assert dialect_name(engine) == dialect_name(conn) == dialect_name(session) == expected
    assert is_postgres(engine) is (expected == "postgresql")


def test_id_in_selects_exactly_the_listed_ids_as_one_parameter(engine: Engine) -> None:
    ids = _subscribers(engine, 30)
    wanted = ids[3:20:4] + [10**12]  # an id that does not exist matches nothing
    condition = id_in(engine, models.Subscriber.id, wanted)
    statement = select(models.Subscriber.id).where(condition)
    with session_scope(engine) as session:
        assert sorted(session.scalars(statement)) == ids[3:20:4]
    assert len(statement.compile(engine).params) == 1


def test_per_dialect_upsert_skips_a_conflict_on_both_stores(engine: Engine) -> None:
    table = models.Suppression.__table__
    forms = per_dialect(lambda insert: insert(table).on_conflict_do_nothing(index_elements=[table.c.email]))
    now = datetime.now(timezone.utc)
    row = {"email": "gone@example.test", "reason": "unsubscribed", "source": "test", "created_at": now}
    with session_scope(engine) as session:
        assert for_store(forms, session) is forms[dialect_name(engine)]
        session.execute(for_store(forms, session), [row])
        session.execute(for_store(forms, session), [row | {"reason": "bounced"}])
    with session_scope(engine) as session:
        assert session.scalars(select(table.c.reason)).all() == ["unsubscribed"]


def test_an_unsupported_store_is_named_not_guessed() -> None:
    other = create_mock_engine("mysql://u@localhost/x", executor=None)  # never connects
    with pytest.raises(NotImplementedError, match="'mysql' store is not supported"):
        upsert_insert(other)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="only postgresql and sqlite"):
        for_store({"sqlite": 1}, other)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="'oracle' store"):
        id_in("oracle", models.Subscriber.id, [1])


def test_id_literals_are_integers_only() -> None:
    assert ids_literal("postgresql", [3, 1]) == "{3,1}"
    assert ids_literal("sqlite", [3, 1]) == "[3,1]"
    with pytest.raises(ValueError):
        ids_literal("sqlite", ["1); DROP TABLE x; --"])  # type: ignore[list-item]
