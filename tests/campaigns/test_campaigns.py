"""Campaign lifecycle on both stores: create, ledger, send to the outbox, preview, status."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from factories import add_subscribers, suppress
from newsletter.campaigns import (
    build_ledger,
    campaign_status,
    create_campaign,
    import_article,
    ledger_counts,
    preview,
    send_campaign,
)
from newsletter.db import models, session_scope
from newsletter.errors import UserError
from repo_paths import REPO_DIR
from waiting import wait_until


@pytest.fixture
def seed_slug(engine, seed_article_path: Path) -> str:
    with session_scope(engine) as session:
        return import_article(session, seed_article_path).row.slug


def _create(engine, settings, slug: str, segment: str = "all", **kw) -> int:
    with session_scope(engine) as session:
        return create_campaign(session, settings, article_slug=slug, segment=segment, **kw).id


def test_article_import_is_idempotent(engine, seed_article_path):
    with session_scope(engine) as session:
        first = import_article(session, seed_article_path)
        second = import_article(session, seed_article_path)
    assert first.outcome == "created" and second.outcome == "unchanged"
    assert first.row.id == second.row.id


def test_create_registers_links_and_keeps_placeholders(engine, settings, seed_slug):
    campaign_id = _create(engine, settings, seed_slug)
    with session_scope(engine) as session:
        campaign = session.get(models.Campaign, campaign_id)
        kinds = {link.kind for link in campaign.links}
        assert campaign.status == "draft"
        assert "cta" in kinds
        cta = next(link for link in campaign.links if link.kind == "cta")
        assert cta.url == settings.booking_url
        assert "%%token%%" in campaign.html and "%%first_name_html%%" in campaign.html
        assert "%%first_name%%" in campaign.text
        assert campaign.subject.startswith("The Emergence of Ketamine")
        assert "neuroplasticity" in campaign.preheader


def test_create_rejects_unknown_article_and_segment(engine, settings, seed_slug):
    with session_scope(engine) as session, pytest.raises(UserError, match="no article"):
        create_campaign(session, settings, article_slug="nope", segment="all")
    with session_scope(engine) as session, pytest.raises(UserError, match="nope-segment"):
        create_campaign(session, settings, article_slug=seed_slug, segment="nope-segment")


def test_ledger_leaves_out_suppressed_and_inactive_and_is_idempotent(engine, settings, seed_slug):
    active = add_subscribers(engine, 20)
    add_subscribers(engine, 3, status="unsubscribed", start=100)
    add_subscribers(engine, 2, status="pending", start=200)
    add_subscribers(engine, 2, status="bounced", start=300)
    suppress(engine, "reader0@example.com")  # on the suppression list though still marked active
    campaign_id = _create(engine, settings, seed_slug)
    with session_scope(engine) as session:
        campaign = session.get(models.Campaign, campaign_id)
        added = build_ledger(session, campaign, settings.audiences_dir)
        again = build_ledger(session, campaign, settings.audiences_dir)
        counts = ledger_counts(session, campaign_id)
        subscriber_ids = set(
            session.scalars(select(models.Delivery.subscriber_id).where(models.Delivery.campaign_id == campaign_id))
        )
    assert added == 19 and again == 0
    assert counts["queued"] == 19
    assert subscriber_ids == set(active[1:])


def test_a_first_build_that_loses_a_race_adds_only_what_the_other_left_out(engine, settings, seed_slug):
    """The first build of a campaign is a plain INSERT. If another transaction writes some of
    the same rows first (PostgreSQL: ours waits on its uncommitted keys, then fails on them),
    the build falls back to skipping what is there, and still adds the rest."""
    import threading

    from sqlalchemy import text

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: no two builds overlap")
    ids = add_subscribers(engine, 10)
    campaign_id = _create(engine, settings, seed_slug)
    with engine.connect() as other:
        other.execute(
            models.Delivery.__table__.insert(),
            [
                {
                    "campaign_id": campaign_id,
                    "subscriber_id": i,
                    "status": "queued",
                    "attempts": 0,
                    "created_at": models.utcnow(),
                }
                for i in ids[:4]
            ],
        )  # not committed yet
        outcome: dict[str, object] = {}

        def build() -> None:
            with session_scope(engine) as session:
                outcome["added"] = build_ledger(
                    session, session.get(models.Campaign, campaign_id), settings.audiences_dir
                )

        def waiting_on_a_lock() -> bool:
            with engine.connect() as conn:
                return bool(
                    conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND datname = current_database()"
                        )
                    )
                )

        builder = threading.Thread(target=build)
        builder.start()
        assert wait_until(waiting_on_a_lock)  # waiting on the other transaction's keys
        assert builder.is_alive() and "added" not in outcome
        other.commit()
    builder.join(30)
    assert outcome["added"] == 6
    with session_scope(engine) as session:
        assert ledger_counts(session, campaign_id)["queued"] == 10


def test_a_ledger_that_outgrows_the_statistics_refreshes_them(engine, settings, seed_slug):
    """PostgreSQL: with statistics from before the build, the planner took the new ledger for a
    handful of rows and scanned all of it for every batch's record (1.3 s a batch at 20,000)."""
    from sqlalchemy import text

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite plans these statements without table statistics")

    def known_rows() -> float:
        with engine.connect() as conn:
            return conn.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'deliveries'::regclass"))

    add_subscribers(engine, 1_500)
    small = _create(engine, settings, seed_slug, segment="all")
    with session_scope(engine) as session:
        before = known_rows()
        assert build_ledger(session, session.get(models.Campaign, small), settings.audiences_dir) == 1_500
    assert before < 1_500 <= known_rows()


def test_send_to_outbox_reaches_each_recipient_once(engine, settings, seed_slug):
    add_subscribers(engine, 30)
    add_subscribers(engine, 2, status="unsubscribed", start=50)
    campaign_id = _create(engine, settings, seed_slug)
    summary = send_campaign(engine, settings, campaign_id)
    assert summary.sent == 30 and summary.failed == 0 and summary.counts["sent"] == 30
    files = sorted((Path(settings.outbox_dir) / f"campaign-{campaign_id}").glob("*.eml"))
    assert len(files) == 30
    recipients = []
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        recipients.append(message["To"].addresses[0].addr_spec)
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        first = message["To"].addresses[0].display_name.split()[0]
        assert f"Hi {first}," in text and first in html
        assert "%%" not in text and "%%" not in html
        assert message["List-Unsubscribe"].startswith("<https://news.example.test/u/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert len(set(recipients)) == 30
    with session_scope(engine) as session:  # the send log counts them, without thirty message ids
        logged = session.execute(
            select(models.SendLog.message_id, models.SendLog.recipients).where(
                models.SendLog.campaign_id == campaign_id
            )
        ).all()
    assert {m for m, _ in logged} == {None} and sum(n for _, n in logged) == 30
    # sending again finds nothing queued and mails nobody twice
    with session_scope(engine) as session:
        session.get(models.Campaign, campaign_id).status = "sending"
    again = send_campaign(engine, settings, campaign_id)
    assert again.sent == 0 and again.ledger_added == 0
    assert len(list((Path(settings.outbox_dir) / f"campaign-{campaign_id}").glob("*.eml"))) == 30
    with session_scope(engine) as session:
        assert session.get(models.Campaign, campaign_id).status == "sent"


def test_a_send_keeps_older_objects_out_of_full_collections_until_it_ends(engine, settings, seed_slug, monkeypatch):
    """While batches go out, what was alive before the send is frozen (``gc.freeze``): full
    collections walk only the send's own objects. Afterwards nothing stays frozen, so it can be
    collected again."""
    import gc

    from newsletter.delivery import OutboxTransport

    seen: list[int] = []
    original = OutboxTransport.send_batch

    def send_batch(self, message, recipients):  # type: ignore[no-untyped-def]
        seen.append(gc.get_freeze_count())
        return original(self, message, recipients)

    monkeypatch.setattr(OutboxTransport, "send_batch", send_batch)
    add_subscribers(engine, 5)
    before = gc.get_freeze_count()
    summary = send_campaign(engine, settings, _create(engine, settings, seed_slug))
    assert summary.sent == 5 and seen and all(frozen > before for frozen in seen)
    assert gc.get_freeze_count() == before


def test_sent_campaign_cannot_be_sent_again(engine, settings, seed_slug):
    add_subscribers(engine, 2)
    campaign_id = _create(engine, settings, seed_slug)
    send_campaign(engine, settings, campaign_id)
    with pytest.raises(UserError, match="is sent"):
        send_campaign(engine, settings, campaign_id)


def test_preview_is_a_real_multipart_message(engine, settings, seed_slug):
    add_subscribers(engine, 1)
    campaign_id = _create(engine, settings, seed_slug, subject="Ketamine therapy, explained", preheader="What to know")
    with session_scope(engine) as session:
        result = preview(session, settings, campaign_id)
    message = email.message_from_bytes(result.eml, policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    for header in (
        "Subject",
        "From",
        "To",
        "Reply-To",
        "Date",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ):
        assert message[header], header
    assert message["Subject"] == "Ketamine therapy, explained"
    assert message["From"].addresses[0].display_name == settings.from_name
    assert message["Message-ID"].endswith(f"@{settings.sending_domain}>")
    assert "Hi Reader0," in result.text and "%%" not in result.html
    assert all(len(line) <= 998 for line in result.eml.split(b"\r\n") + result.eml.split(b"\n"))


def test_status_counts_every_ledger_state(engine, settings, seed_slug):
    add_subscribers(engine, 5)
    campaign_id = _create(engine, settings, seed_slug)
    send_campaign(engine, settings, campaign_id)
    with session_scope(engine) as session:
        status = campaign_status(session, campaign_id)
        total = session.scalar(select(func.count()).select_from(models.Delivery))
    assert {k: status[k] for k in ("queued", "in_flight", "sent", "failed", "ambiguous", "suppressed")} == {
        "queued": 0,
        "in_flight": 0,
        "sent": 5,
        "failed": 0,
        "ambiguous": 0,
        "suppressed": 0,
    }
    assert status["recipients"] == total == 5
    assert status["status"] == "sent"


# --- a campaign rendered for an old public URL (NEWSLETTER_PUBLIC_URL changed since create) ---------

OLD_URL = "http://127.0.0.1:8000"


def test_rerender_uses_the_new_public_url_and_keeps_subject_preheader_segment_and_schedule(engine, settings, seed_slug):
    from datetime import timedelta

    from newsletter.campaigns import (
        mark_scheduled,
        rendered_public_url,
        rerender_campaign,
        stale_public_url,
    )
    from newsletter.db.models import utcnow

    old = settings.with_overrides(public_url=OLD_URL)
    campaign_id = _create(engine, old, seed_slug, subject="Ketamine, explained", preheader="What a first visit is like")
    when = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    with session_scope(engine) as session:
        mark_scheduled(session, campaign_id, when, "America/Chicago")
        campaign = session.get(models.Campaign, campaign_id)
        assert rendered_public_url(campaign) == OLD_URL and stale_public_url(campaign, settings) == OLD_URL
        link_ids = {link.position: link.id for link in campaign.links}
    with session_scope(engine) as session:
        result = rerender_campaign(session, settings, campaign_id)
    assert (result.rendered_for_before, result.public_url, result.status) == (
        OLD_URL,
        "https://news.example.test",
        "scheduled",
    )
    with session_scope(engine) as session:
        campaign = session.get(models.Campaign, campaign_id)
        assert OLD_URL not in campaign.html and OLD_URL not in campaign.text
        assert "https://news.example.test/u/%%token%%" in campaign.text
        assert stale_public_url(campaign, settings) is None
        assert (campaign.subject, campaign.preheader, campaign.segment) == (
            "Ketamine, explained",
            "What a first visit is like",
            "all",
        )
        assert (campaign.status, campaign.scheduled_at, campaign.schedule_timezone) == (
            "scheduled",
            when,
            "America/Chicago",
        )
        assert {link.position: link.id for link in campaign.links} == link_ids  # registered again, same rows


def test_a_campaign_rendered_for_an_old_public_url_is_not_sent_even_without_the_gate(engine, settings, seed_slug):
    """``campaign send --force`` and a scheduled job both reach ``start_sending``: its links would
    lead to an address this installation no longer answers, so it refuses in one line."""
    add_subscribers(engine, 3)
    campaign_id = _create(engine, settings.with_overrides(public_url=OLD_URL), seed_slug)
    with pytest.raises(UserError) as refused:
        send_campaign(engine, settings, campaign_id)
    assert str(refused.value) == (
        f"campaign {campaign_id} was rendered for {OLD_URL}; the public URL is now "
        f"https://news.example.test: run `newsletter campaign rerender {campaign_id}`"
    )
    with session_scope(engine) as session:
        assert session.get(models.Campaign, campaign_id).status == "draft"
        assert ledger_counts(session, campaign_id)["queued"] == 0


@pytest.mark.parametrize(
    ("status", "says"),
    [
        ("sent", "it was sent: a sent message cannot change"),
        ("sending", "it is being sent"),
        ("paused", "it was paused mid-send"),
        ("cancelled", "it is cancelled"),
    ],
)
def test_rerender_refuses_a_campaign_that_went_out_or_was_cancelled(engine, settings, seed_slug, status, says):
    from newsletter.campaigns import rerender_campaign

    campaign_id = _create(engine, settings, seed_slug)
    with session_scope(engine) as session:
        session.get(models.Campaign, campaign_id).status = status
    with session_scope(engine) as session, pytest.raises(UserError) as refused:
        rerender_campaign(session, settings, campaign_id)
    assert refused.value.where == f"campaign {campaign_id}" and says in refused.value.message
    assert "\n" not in str(refused.value)


def test_a_scheduled_send_refused_for_an_old_url_can_be_rerendered_and_sent(engine, settings, seed_slug):
    """The scheduler's job marks a refused send ``failed``; nothing was queued, so a re-render
    brings it back as a draft that sends."""
    from newsletter.campaigns import rerender_campaign
    from newsletter.scheduling.jobs import run_campaign_job

    add_subscribers(engine, 2)
    campaign_id = _create(engine, settings.with_overrides(public_url=OLD_URL), seed_slug)
    from datetime import timedelta

    from newsletter.db.models import utcnow

    with session_scope(engine) as session:
        campaign = session.get(models.Campaign, campaign_id)
        campaign.status, campaign.scheduled_at = "scheduled", utcnow() - timedelta(seconds=1)
    import os

    env = {
        "NEWSLETTER_DATABASE_URL": settings.database_url,
        "NEWSLETTER_PUBLIC_URL": settings.public_url,
        "NEWSLETTER_SECRET_KEY": settings.secret_key,
        "NEWSLETTER_OUTBOX_DIR": settings.outbox_dir,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        run_campaign_job(campaign_id)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    with session_scope(engine) as session:
        campaign = session.get(models.Campaign, campaign_id)
        assert campaign.status == "failed" and f"campaign rerender {campaign_id}" in campaign.status_reason
    with session_scope(engine) as session:
        result = rerender_campaign(session, settings, campaign_id)
    assert (result.status, result.scheduled_at) == ("draft", None)
    assert send_campaign(engine, settings, campaign_id).sent == 2


def test_rerender_by_command_line(db_url, tmp_path, seed_article_path):
    """``campaign rerender ID [--json]``: the new address, kept fields; a sent campaign is refused
    in one line with exit 1."""
    import json
    import os
    import subprocess
    import sys

    repo = REPO_DIR
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    base.update(
        {
            "NEWSLETTER_DATABASE_URL": db_url,
            "NEWSLETTER_SECRET_KEY": "cli-test-key",
            "PYTHONPATH": str(repo),
            "COLUMNS": "200",
            "NEWSLETTER_PUBLIC_URL": OLD_URL,
        }
    )
    (tmp_path / "people.csv").write_text("email,first_name\nann@example.com,Ann\n")

    def run(*args: str, url: str = OLD_URL) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**base, "NEWSLETTER_PUBLIC_URL": url},
            timeout=120,
            check=False,
        )

    slug = json.loads(run("article", "import", str(seed_article_path), "--json").stdout)["slug"]
    assert run("subscribers", "import", "people.csv").returncode == 0
    created = json.loads(run("campaign", "create", "--article", slug, "--segment", "all", "--json").stdout)
    new = "https://news.example.test"
    preflight = run("campaign", "preflight", str(created["id"]), "--json", url=new)
    assert preflight.returncode == 1
    assert json.loads(preflight.stdout)["failed"] == ["public_url"]
    rerendered = run("campaign", "rerender", str(created["id"]), "--json", url=new)
    assert rerendered.returncode == 0, rerendered.stderr
    data = json.loads(rerendered.stdout)
    assert (data["rendered_for_before"], data["public_url"], data["subject"]) == (OLD_URL, new, created["subject"])
    human = run("campaign", "rerender", str(created["id"]), url=new)
    assert human.returncode == 0 and f"re-rendered for {new}" in human.stdout
    assert run("campaign", "send", str(created["id"]), url=new).returncode == 0
    refused = run("campaign", "rerender", str(created["id"]), url=new)
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 1 and len(lines) == 1 and "Traceback" not in refused.stderr
    assert f"campaign {created['id']}: cannot be re-rendered: it was sent" in lines[0]
