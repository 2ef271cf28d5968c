"""Sending through SendGrid's official library to the local fake server (never the real API).

The fake checks every request body (official schema when ../shared is present, its own
essential rules always) and records what each recipient would receive, so "exactly once,
personalised, with a working unsubscribe" is checked from the recipient's side.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from factories import add_subscribers, deliveries_by_email, suppress
from newsletter.campaigns import create_campaign, import_article, send_campaign
from newsletter.db import models, session_scope
from newsletter.delivery import SendGridTransport
from newsletter.delivery.batch_sender import RetryPolicy
from newsletter.web import create_app

NO_WAIT = RetryPolicy(max_attempts=4, base_seconds=0.01, cap_seconds=0.05)


@pytest.fixture
def sg_settings(settings, fake_sendgrid):
    return settings.with_overrides(
        sendgrid_api_key=fake_sendgrid.api_key, sendgrid_host=fake_sendgrid.url, sendgrid_timeout=30.0
    )  # a loaded CI machine validates 1000 slowly


def _campaign(engine, settings, seed_article_path) -> int:
    with session_scope(engine) as session:
        slug = import_article(session, seed_article_path).row.slug
        return create_campaign(session, settings, article_slug=slug, segment="all").id


def test_five_thousand_recipients_each_exactly_once_personalised_with_working_unsubscribe(
    engine, sg_settings, fake_sendgrid, seed_article_path
):
    add_subscribers(engine, 5000)
    add_subscribers(engine, 10, status="unsubscribed", start=9000)
    suppress(engine, "reader42@example.com", "bounced")
    campaign_id = _campaign(engine, sg_settings, seed_article_path)
    summary = send_campaign(engine, sg_settings, campaign_id)

    assert summary.transport == "sendgrid" and summary.sent == 4999 and summary.failed == 0
    assert len(fake_sendgrid.requests) == 5  # 1000 recipients per request
    assert fake_sendgrid.connection_count <= sg_settings.send_concurrency  # kept alive, one per sending thread
    assert set(fake_sendgrid.received) == {f"reader{n}@example.com" for n in range(5000) if n != 42}
    assert all(len(copies) == 1 for copies in fake_sendgrid.received.values())
    with session_scope(engine) as session:
        message_ids = set(
            session.scalars(select(models.Delivery.message_id).where(models.Delivery.campaign_id == campaign_id))
        )
    assert len(message_ids) == 5 and None not in message_ids

    ann = fake_sendgrid.received["reader7@example.com"][0]
    assert "Hi Reader7," in ann.text and "Reader7" in ann.html and "%%" not in ann.html + ann.text
    assert ann.custom_args == {"campaign_id": str(campaign_id), "delivery_id": ann.custom_args["delivery_id"]}
    unsubscribe = ann.headers["List-Unsubscribe"]
    assert ann.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = re.fullmatch(r"<https://news\.example\.test/u/([^>]+)>", unsubscribe).group(1)
    assert token in ann.html and token in ann.text  # the same token drives the footer links
    other = fake_sendgrid.received["reader8@example.com"][0]
    assert token not in other.html

    client = TestClient(create_app(sg_settings, engine))
    answer = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
    assert answer.status_code == 200
    with session_scope(engine) as session:
        reader7 = session.scalar(select(models.Subscriber).where(models.Subscriber.email == "reader7@example.com"))
        assert reader7.status == "unsubscribed"
        assert session.scalar(select(models.Suppression).where(models.Suppression.email == "reader7@example.com"))


def test_unsubscribed_after_ledger_is_left_out_at_dispatch(engine, sg_settings, fake_sendgrid, seed_article_path):
    add_subscribers(engine, 30)
    campaign_id = _campaign(engine, sg_settings, seed_article_path)
    small = sg_settings.with_overrides(batch_size=10)
    from newsletter.campaigns.send import start_sending

    start_sending(engine, small, campaign_id)
    with session_scope(engine) as session:
        session.execute(
            models.Subscriber.__table__.update()
            .where(models.Subscriber.email == "reader25@example.com")
            .values(status="unsubscribed")
        )
    summary = send_campaign(engine, small, campaign_id)
    assert summary.sent == 29 and summary.suppressed == 1
    assert "reader25@example.com" not in fake_sendgrid.received
    assert deliveries_by_email(engine, campaign_id)["reader25@example.com"] == "suppressed"


def test_bad_key_pauses_with_nothing_marked_sent(engine, sg_settings, fake_sendgrid, seed_article_path):
    add_subscribers(engine, 15)
    campaign_id = _campaign(engine, sg_settings, seed_article_path)
    fake_sendgrid.plan(("status", 401))
    summary = send_campaign(engine, sg_settings, campaign_id)
    assert summary.paused_reason and "key" in summary.paused_reason.lower()
    assert set(deliveries_by_email(engine, campaign_id).values()) == {"queued"}
    assert fake_sendgrid.received == {}
    with session_scope(engine) as session:
        assert session.get(models.Campaign, campaign_id).status == "paused"


@pytest.mark.parametrize(
    "fault", [("status", 500), ("status", 503), ("status", 429, {"X-RateLimit-Reset": "0"}), ("status", 429)]
)
def test_retryable_answers_send_everyone_once(engine, sg_settings, fake_sendgrid, seed_article_path, fault):
    add_subscribers(engine, 25)
    campaign_id = _campaign(engine, sg_settings, seed_article_path)
    fake_sendgrid.plan(fault, fault)
    summary = send_campaign(engine, sg_settings, campaign_id, retry=NO_WAIT)
    assert summary.sent == 25
    assert all(len(v) == 1 for v in fake_sendgrid.received.values()) and len(fake_sendgrid.received) == 25


def test_one_bad_recipient_fails_alone(engine, sg_settings, fake_sendgrid, seed_article_path):
    add_subscribers(engine, 12)
    campaign_id = _campaign(engine, sg_settings, seed_article_path)
    fake_sendgrid.plan(("reject_email", "reader5@example.com"))
    summary = send_campaign(engine, sg_settings, campaign_id, retry=NO_WAIT)
    ledger = deliveries_by_email(engine, campaign_id)
    assert summary.sent == 11 and summary.failed == 1
    assert ledger["reader5@example.com"] == "failed"
    assert "reader5@example.com" not in fake_sendgrid.received and len(fake_sendgrid.received) == 11


def test_a_batch_split_after_a_400_logs_each_accepted_request(engine, sg_settings, fake_sendgrid, seed_article_path):
    """A 400 that names nobody splits the batch; each half is its own request with its own
    X-Message-Id, and the send log keeps both (the webhook's fallback needs them)."""
    add_subscribers(engine, 10)
    campaign_id = _campaign(engine, sg_settings, seed_article_path)
    fake_sendgrid.plan(("status", 400))
    assert send_campaign(engine, sg_settings, campaign_id, retry=NO_WAIT).sent == 10
    accepted = [r.message_id for r in fake_sendgrid.requests if r.status == 202]
    with session_scope(engine) as session:
        logged = session.execute(
            select(models.SendLog.message_id, models.SendLog.recipients).where(
                models.SendLog.campaign_id == campaign_id
            )
        ).all()
    assert len(accepted) == 2 and sorted(logged) == sorted((m, 5) for m in accepted)


def test_answer_lost_after_acceptance_is_ambiguous_not_resent(engine, sg_settings, fake_sendgrid, seed_article_path):
    add_subscribers(engine, 8)
    campaign_id = _campaign(engine, sg_settings, seed_article_path)
    fake_sendgrid.plan(("drop_after_accept",))
    summary = send_campaign(engine, sg_settings, campaign_id, retry=NO_WAIT)
    assert summary.ambiguous == 8 and summary.sent == 0
    assert set(deliveries_by_email(engine, campaign_id).values()) == {"ambiguous"}
    assert all(len(v) == 1 for v in fake_sendgrid.received.values())  # delivered once, never again


def test_transport_is_sendgrid_only_with_a_key(settings):
    from newsletter.campaigns import make_transport

    assert make_transport(settings).name == "outbox"
    assert isinstance(make_transport(settings.with_overrides(sendgrid_api_key="SG.x")), SendGridTransport)


def test_each_request_is_made_while_the_one_before_is_out_and_sent_as_made(
    engine, sg_settings, fake_sendgrid, seed_article_path, monkeypatch
):
    """The dispatcher makes batch N+1's request body (``prepare``) on its own thread while batch
    N is out, and the sending thread posts exactly that body. A retry posts it again; a batch
    split after a 400 is made anew for each half."""
    import json
    import threading

    add_subscribers(engine, 30)
    campaign_id = _campaign(engine, sg_settings, seed_article_path)
    made: list[tuple[str, list[int]]] = []
    real = SendGridTransport.prepare

    def prepare(self, message, recipients):  # type: ignore[no-untyped-def]
        made.append((threading.current_thread().name, [r.delivery_id for r in recipients]))
        return real(self, message, recipients)

    monkeypatch.setattr(SendGridTransport, "prepare", prepare)
    fake_sendgrid.plan(("status", 503), None, None, ("reject_email", "reader25@example.com"))
    summary = send_campaign(
        engine, sg_settings.with_overrides(batch_size=10, send_concurrency=1), campaign_id, retry=NO_WAIT
    )
    assert (summary.sent, summary.failed) == (29, 1)
    threads = {name for name, _ in made[:3]}
    assert threads == {threading.current_thread().name}  # the claiming thread, not the sending one
    posted = [
        [int(p["custom_args"]["delivery_id"]) for p in json.loads(r.raw)["personalizations"]]
        for r in fake_sendgrid.requests
    ]
    first, second, third = (ids for _, ids in made[:3])
    assert posted[:3] == [first, first, second]  # 503, the same body again, then the next batch
    assert fake_sendgrid.requests[0].raw == fake_sendgrid.requests[1].raw
    assert posted[3] == third  # the 400 that names one recipient
    assert all(set(body) < set(third) for body in posted[4:])  # the rest of that batch, made anew
    assert len(fake_sendgrid.received) == 29 and all(len(v) == 1 for v in fake_sendgrid.received.values())


def test_a_send_holds_its_connections_instead_of_checking_one_out_per_batch(
    engine, sg_settings, fake_sendgrid, seed_article_path
):
    """Ten batches cost the pool as many checkouts as one: the dispatch holds its connections
    (claims, the still-sending check, the recorder) for the whole run, and gives them back."""
    from sqlalchemy import event

    def checkouts_for(recipients: int) -> int:
        with session_scope(engine) as session:
            session.execute(models.Delivery.__table__.delete())
            session.execute(models.Campaign.__table__.delete())
            session.execute(models.Subscriber.__table__.delete())
        add_subscribers(engine, recipients)
        campaign_id = _campaign(engine, sg_settings, seed_article_path)
        counted: list[int] = []
        listener = lambda *_: counted.append(1)  # noqa: E731
        event.listen(engine, "checkout", listener)
        try:
            summary = send_campaign(engine, sg_settings.with_overrides(batch_size=100), campaign_id)
        finally:
            event.remove(engine, "checkout", listener)
        assert summary.sent == recipients
        return len(counted)

    one_batch, ten_batches = checkouts_for(100), checkouts_for(1000)
    assert ten_batches == one_batch
    assert engine.pool.checkedout() == 0


def test_a_send_carries_on_when_the_database_drops_its_connections(
    engine, sg_settings, fake_sendgrid, seed_article_path
):
    """The connections a send holds skip the pool's pre-ping; when PostgreSQL ends them (a
    restart, a failover, an administrator) mid-send, each is opened again on its next use and
    the send finishes: every recipient once, nothing left ambiguous."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: an administrator ends the send's connections")
    from sqlalchemy import text

    add_subscribers(engine, 3000)
    campaign_id = _campaign(engine, sg_settings, seed_article_path)
    ended: list[int] = []

    def end_every_other_connection(result, _total) -> None:  # type: ignore[no-untyped-def]
        if result.batches in (1, 3):  # once while the recorder writes, once more later
            with engine.connect() as conn:
                ended.append(
                    conn.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    ).scalar()
                )

    summary = send_campaign(
        engine, sg_settings.with_overrides(batch_size=500), campaign_id, on_batch=end_every_other_connection
    )
    assert len(ended) == 2 and min(ended) >= 3  # at least the claims', the check's and the recorder's
    assert summary.sent == 3000 and summary.counts["ambiguous"] == 0 and summary.counts["sent"] == 3000
    assert len(fake_sendgrid.received) == 3000
    assert all(len(copies) == 1 for copies in fake_sendgrid.received.values())
