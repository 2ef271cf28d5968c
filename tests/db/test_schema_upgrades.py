"""No silent schema upgrades (issue 15, section 4).

Only ``newsletter init`` (or ``newsletter db upgrade``) changes an existing store's schema. Every
other command, the server, the worker and the scheduler stop in one line on a store at an older
revision, or at one this code does not know, and leave it as it is; an empty store (a new SQLite
file, a new PostgreSQL database) is still created at the newest revision on first use. Each test
runs on SQLite and on PostgreSQL, each command in a process of its own (``run_many`` from the
mistakes table forks one per command).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from sqlalchemy import text

from cli_runs import base_env, run_many, run_one
from newsletter.db import (
    current_revision,
    ensure_current,
    head_revision,
    make_engine,
    schema_status,
    upgrade,
)
from newsletter.db.migrate import known_revisions
from newsletter.errors import UserError

FIRST = "0001"
UNKNOWN = "9999_from_the_future"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def _store_at(url: str, revision: str) -> None:
    """A store migrated to ``revision`` only, as an older newsletter left it."""
    engine = make_engine(url)
    upgrade(engine, revision)
    engine.dispose()


def _store_from_a_newer_program(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": UNKNOWN})
    engine.dispose()


#: commands that must not use (or upgrade) a store at the wrong revision, one per kind of way in
REFUSING = [
    ["campaign", "list"],
    ["campaign", "list", "--json"],
    ["leads", "list"],
    ["nurture", "list"],
    ["worker", "--exit-when-idle"],
    ["scheduler"],
]


def _refusing(tmp: Path) -> list[list[str]]:
    return [*REFUSING, ["serve", "--port", str(_free_port())]]  # the port check comes first: a free one


def test_upgrade_stops_at_the_revision_asked_for(db_url):
    assert FIRST in known_revisions() and head_revision() != FIRST
    _store_at(db_url, FIRST)
    assert _revision(db_url) == FIRST


def test_an_out_of_date_store_is_refused_in_one_line_and_left_as_it_is(db_url, tmp_path):
    """Every command used to upgrade the store on first use, so `campaign list` against a
    production PostgreSQL ran the migrations; now it says where the store is and what to run."""
    _store_at(db_url, FIRST)
    env = base_env(db_url, tmp_path)
    commands = _refusing(tmp_path)
    ran = run_many([(args, tmp_path, env) for args in commands])
    for args, result in zip(commands, ran, strict=True):
        assert result.code == 1, (args, result)
        assert "Traceback" not in result.err and result.out == "", (args, result)
        errors = result.lines()  # the worker logs at INFO: nothing but the refusal reaches stderr
        assert len(errors) == 1 and errors[0].startswith("error: "), (args, result.err)
        assert f"schema revision {FIRST}" in errors[0] and f"needs revision {head_revision()}" in errors[0], errors
        assert "run `newsletter init`" in errors[0], errors
    assert _revision(db_url) == FIRST

    init = run_one(["init", "--json"], tmp_path, env)
    assert init.code == 0, init
    assert json.loads(init.out)["revision_before"] == FIRST and json.loads(init.out)["revision"] == head_revision()
    listed = run_one(["campaign", "list", "--json"], tmp_path, env)
    assert listed.code == 0 and json.loads(listed.out) == [], listed


def test_db_upgrade_is_init_and_db_status_changes_nothing(db_url, tmp_path):
    env = base_env(db_url, tmp_path)
    status = run_one(["db", "status", "--json"], tmp_path, env)
    assert status.code == 0, status
    assert json.loads(status.out) == {
        "database": json.loads(status.out)["database"],
        "revision": None,
        "head": head_revision(),
        "state": "empty",
    }
    if db_url.startswith("sqlite"):
        assert not Path(db_url.removeprefix("sqlite:///")).exists()  # looked, did not even create the file
    assert _revision(db_url) is None  # looked, did not create

    _store_at(db_url, FIRST)
    said = run_one(["db", "status"], tmp_path, env)
    assert said.code == 0 and f"revision {FIRST}" in said.out and "out of date" in said.out, said
    assert _revision(db_url) == FIRST

    upgraded = run_one(["db", "upgrade"], tmp_path, env)
    assert upgraded.code == 0 and f"migrated from {FIRST} to revision {head_revision()}" in upgraded.out, upgraded
    status = run_one(["db", "status", "--json"], tmp_path, env)
    assert json.loads(status.out)["state"] == "current" and json.loads(status.out)["revision"] == head_revision()


def test_an_empty_store_is_created_on_first_use_with_clean_json(db_url, tmp_path):
    """A new SQLite file, or a new (empty) PostgreSQL database, needs no extra step."""
    assert _revision(db_url) is None
    listed = run_one(["campaign", "list", "--json"], tmp_path, base_env(db_url, tmp_path))
    assert listed.code == 0, listed
    assert json.loads(listed.out) == []
    assert _revision(db_url) == head_revision()


def test_a_store_made_by_a_newer_program_is_refused_and_never_downgraded(db_url, tmp_path):
    _store_from_a_newer_program(db_url)
    env = base_env(db_url, tmp_path)
    commands = [["init"], ["db", "upgrade"], *_refusing(tmp_path)]
    ran = run_many([(args, tmp_path, env) for args in commands])
    for args, result in zip(commands, ran, strict=True):
        assert result.code == 1 and "Traceback" not in result.err, (args, result)
        errors = result.lines()
        assert len(errors) == 1 and errors[0].startswith("error: "), (args, result.err)
        assert f"schema revision {UNKNOWN}" in errors[0] and "made by a newer newsletter" in errors[0], errors
        assert "upgrade the program" in errors[0], errors
    assert _revision(db_url) == UNKNOWN
    status = run_one(["db", "status", "--json"], tmp_path, env)
    assert status.code == 0 and json.loads(status.out)["state"] == "newer", status


def test_a_store_with_tables_but_no_revision_is_not_taken_for_an_empty_one(db_url):
    """A database holding someone else's tables is not filled with ours behind their back."""
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)"))
    with pytest.raises(UserError, match="has tables but no newsletter schema revision"):
        ensure_current(engine)
    assert schema_status(engine).state == "unversioned" and current_revision(engine) is None
    engine.dispose()


def test_processes_starting_together_on_an_empty_store_all_find_it_created(db_url, tmp_path):
    """Workers and the scheduler started at once on a new database: none fails on another's
    half-made tables (PostgreSQL: the schema's advisory lock; SQLite: the write lock, taken first)."""
    env = base_env(db_url, tmp_path)
    ran = run_many([(["campaign", "list", "--json"], tmp_path, env)] * 4, at_once=4)
    assert [result.code for result in ran] == [0] * 4, ran
    assert all(json.loads(result.out) == [] for result in ran)
    assert _revision(db_url) == head_revision()
