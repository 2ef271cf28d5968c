"""Scale-out on PostgreSQL with real processes: workers that die mid-send, a scheduler that dies
while its standby waits. Nothing is mocked: `newsletter worker` and `python scheduler.py` run as
subprocesses against the test database and the local fake SendGrid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from factories import add_subscribers
from fake_sendgrid import FakeSendGrid
from newsletter.campaigns import campaign_status, create_campaign, import_article, ledger_counts, start_sending
from newsletter.config import Settings
from newsletter.db import make_engine, models, session_scope, upgrade
from newsletter.db.models import utcnow
from newsletter.scheduling import schedule_campaign
from repo_paths import REPO_DIR

REPO = REPO_DIR
pytestmark = pytest.mark.slow


@pytest.fixture
def pg_engine(pg_url):
    from conftest import _reset_postgres

    _reset_postgres(pg_url)
    engine = make_engine(pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _env(pg_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "NEWSLETTER_DATABASE_URL": pg_url,
            "NEWSLETTER_SECRET_KEY": "scale-out-key",
            "NEWSLETTER_PUBLIC_URL": "https://news.example.test",
            "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
            "NEWSLETTER_LOG_LEVEL": "INFO",
        }
    )
    env.update(extra)
    return env


def _campaign(engine, settings: Settings, seed_article_path: Path) -> int:
    with session_scope(engine) as session:
        slug = import_article(session, seed_article_path).row.slug
        return create_campaign(session, settings, article_slug=slug, segment="all").id


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_three_workers_one_killed_mid_send(pg_engine, pg_url, tmp_path, seed_article_path):
    add_subscribers(pg_engine, 20_000)
    settings = Settings(database_url=pg_url, secret_key="scale-out-key", public_url="https://news.example.test")
    campaign_id = _campaign(pg_engine, settings, seed_article_path)
    start_sending(pg_engine, settings, campaign_id)  # ledger built; workers do the sending

    with FakeSendGrid(record=False) as sg:
        sg.plan(*[("delay", 0.15)] * 200)  # slow answers so a worker is caught with a batch in flight
        env = _env(
            pg_url,
            tmp_path,
            SENDGRID_API_KEY=sg.api_key,
            NEWSLETTER_SENDGRID_HOST=sg.url,
            NEWSLETTER_BATCH_SIZE="250",
            NEWSLETTER_LEASE_SECONDS="4",
            NEWSLETTER_WORKER_POLL_SECONDS="0.3",
        )
        logs = [open(tmp_path / f"worker{i}.log", "w") for i in range(3)]
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "newsletter", "worker", "--exit-when-idle"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for log in logs
        ]
        try:
            _wait(lambda: sg.request_count >= 12, 120, "the workers to get going")
            workers[0].send_signal(signal.SIGKILL)
            for w in workers[1:]:
                assert w.wait(timeout=300) == 0, (tmp_path / "worker1.log").read_text()[-3000:]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
            for log in logs:
                log.close()
        seen = dict(sg.addresses)

    assert workers[0].returncode == -signal.SIGKILL
    assert max(seen.values()) == 1, "a recipient was sent twice"
    # An idle worker does not wait out a dead one's lease; once it has run out (4 s), `campaign
    # status` finds the killed worker's rows ambiguous, as any worker would.
    time.sleep(5)
    with session_scope(pg_engine) as session:
        reading = campaign_status(session, campaign_id)
        counts = ledger_counts(session, campaign_id)
        status = session.get(models.Campaign, campaign_id).status
        sent_emails = set(
            session.scalars(
                select(models.Subscriber.email)
                .join(models.Delivery, models.Delivery.subscriber_id == models.Subscriber.id)
                .where(models.Delivery.campaign_id == campaign_id, models.Delivery.status == "sent")
            )
        )
    print(f"\nledger after one of three workers was killed: {counts}; SendGrid saw {len(seen)} addresses")
    assert counts["queued"] == 0 and counts["in_flight"] == 0
    assert counts["sent"] + counts["ambiguous"] + counts["failed"] + counts["suppressed"] == 20_000
    assert sent_emails <= set(seen), "the ledger says sent but SendGrid never got it"
    assert len(seen) <= counts["sent"] + counts["ambiguous"]
    assert status == "sent"
    assert reading["status"] == ("needs_decision" if counts["ambiguous"] else "sent")


def _scheduler(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, object]:
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, str(REPO / "scheduler.py")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return process, log


def test_standby_scheduler_takes_over_and_fires_once(pg_engine, pg_url, tmp_path, seed_article_path):
    add_subscribers(pg_engine, 40)
    settings = Settings(
        database_url=pg_url,
        secret_key="scale-out-key",
        public_url="https://news.example.test",
        outbox_dir=str(tmp_path / "outbox"),
    )
    campaign_id = _campaign(pg_engine, settings, seed_article_path)
    env = _env(pg_url, tmp_path)
    first, first_log = _scheduler(env, tmp_path / "first.log")
    try:
        _wait(lambda: "now active" in (tmp_path / "first.log").read_text(), 60, "the first scheduler to lead")
        second, second_log = _scheduler(env, tmp_path / "second.log")
        try:
            _wait(lambda: "standby" in (tmp_path / "second.log").read_text(), 60, "the second to wait as standby")
            schedule_campaign(pg_engine, settings, campaign_id, utcnow() + timedelta(seconds=8), "UTC")
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            _wait(lambda: "now active" in (tmp_path / "second.log").read_text(), 60, "the standby to take over")

            def sent() -> bool:
                with session_scope(pg_engine) as session:
                    return session.get(models.Campaign, campaign_id).status == "sent"

            _wait(sent, 90, "the campaign to be sent by the standby")
            time.sleep(2)
        finally:
            second.kill()
            second.wait()
            second_log.close()
    finally:
        if first.poll() is None:
            first.kill()
        first_log.close()
    files = list((tmp_path / "outbox" / f"campaign-{campaign_id}").glob("*.eml"))
    assert len(files) == 40
    with session_scope(pg_engine) as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(models.Delivery)
                .where(models.Delivery.campaign_id == campaign_id, models.Delivery.status == "sent")
            )
            == 40
        )
