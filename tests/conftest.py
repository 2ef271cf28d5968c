"""Shared fixtures. Every test that takes ``engine`` runs twice: on SQLite and on PostgreSQL.

PostgreSQL comes from ``NEWSLETTER_TEST_POSTGRES_URL`` (default: the local server's ``test``
database). Each xdist worker gets a database of its own, emptied before each test, so tests
never see each other's rows. If the server is unreachable the PostgreSQL half fails loudly,
unless ``NEWSLETTER_TEST_SKIP_POSTGRES=1`` says it is expected to be absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from newsletter.config import Settings
from newsletter.db import make_engine, upgrade
from repo_paths import REPO_DIR, SHARED_DIR

PG_URL = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _admin_engine():  # type: ignore[no-untyped-def]
    base = make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    return base, make_engine(base.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")


def _drop_database(name: str) -> None:
    _, admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_url(worker_id: str) -> Iterator[str]:
    """A database of this test run's worker alone (two runs at once never share one)."""
    if os.environ.get("NEWSLETTER_TEST_SKIP_POSTGRES") == "1":
        pytest.skip("PostgreSQL disabled by NEWSLETTER_TEST_SKIP_POSTGRES=1")
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))[:12]
    name = f"newsletter_test_{worker}_{run}".lower() if (worker := worker_id) else f"newsletter_test_{run}"
    base, admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield base.set(database=name).render_as_string(hide_password=False)
    _drop_database(name)


def _reset_postgres(url: str) -> None:
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated store's URL; the test is run once per store."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'newsletter.db'}"
    url = request.getfixturevalue("pg_url")
    _reset_postgres(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings for a test: its own store, outbox and signing key; never a real SendGrid key."""
    return Settings(
        database_url=db_url,
        secret_key="test-secret-key-not-for-production",
        outbox_dir=str(tmp_path / "outbox"),
        public_url="https://news.example.test",
        sendgrid_api_key=None,
    )


@pytest.fixture
def seed_article_path() -> Path:
    return REPO_DIR / "articles" / "000-ketamine-assisted-psychotherapy.txt"


@pytest.fixture
def sendgrid_schema_path() -> Path:
    path = SHARED_DIR / "sendgrid" / "tsg_mail_v3.json"
    if not path.exists():
        pytest.skip(
            f"SendGrid's official schema is not beside the checkout ({path}); the fake server's own checks still run"
        )
    return path


from fake_sendgrid import fake_sendgrid  # noqa: E402,F401  (fixture: a local fake SendGrid server)
