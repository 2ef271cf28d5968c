"""Operator control on both stores: pause, resume, cancel, retry only the failures, resolve
ambiguous rows — each checked from the recipients' side through the fake SendGrid."""

from __future__ import annotations

import pytest

from factories import add_subscribers
from newsletter.campaigns import (
    cancel, create_campaign, drain, import_article, ledger_counts, pause, resolve_ambiguous, resume, retry_failed,
    send_campaign, start_sending,
)
from newsletter.db import models, session_scope
from newsletter.delivery.dispatch import RetryPolicy
from newsletter.errors import UserError

NO_WAIT = RetryPolicy(max_attempts=3, base_seconds=0.01, cap_seconds=0.02)


@pytest.fixture
def sg_settings(settings, fake_sendgrid):
    # One request out at a time: the fake's scripted answers then meet the batches in order.
    return settings.with_overrides(sendgrid_api_key=fake_sendgrid.api_key, sendgrid_host=fake_sendgrid.url,
                                   sendgrid_timeout=1.0, batch_size=10, send_concurrency=1)


@pytest.fixture
def campaign_id(engine, sg_settings, seed_article_path) -> int:
    add_subscribers(engine, 30)
    with session_scope(engine) as session:
        slug = import_article(session, seed_article_path).row.slug
        return create_campaign(session, sg_settings, article_slug=slug, segment="all").id


def _counts(engine, campaign_id):
    with session_scope(engine) as session:
        return ledger_counts(session, campaign_id)


def test_pause_stops_and_resume_finishes(engine, sg_settings, fake_sendgrid, campaign_id):
    start_sending(engine, sg_settings, campaign_id)

    def pause_after_first(result, total):
        if result.batches == 1:
            pause(engine, campaign_id)

    first = drain(engine, sg_settings, campaign_id, on_batch=pause_after_first)
    # The next batch may already be on its way when the first answer is recorded (the send is
    # pipelined); nothing after it goes out.
    assert first.sent in (10, 20) and _counts(engine, campaign_id)["queued"] == 30 - first.sent
    with session_scope(engine) as session:
        assert session.get(models.Campaign, campaign_id).status == "paused"
    resume(engine, campaign_id)
    rest = drain(engine, sg_settings, campaign_id)
    assert rest.sent == 30 - first.sent
    assert len(fake_sendgrid.received) == 30 and all(len(v) == 1 for v in fake_sendgrid.received.values())


def test_with_several_requests_out_a_pause_stops_new_ones_and_records_those_out(engine, sg_settings, fake_sendgrid,
                                                                                 campaign_id):
    """Three requests out at once: a pause after the first answer lets those already out finish
    (and be recorded), sends nothing new, and puts the batch claimed ahead back in the queue."""
    add_subscribers(engine, 30, start=100)  # 60 in all: six batches of ten
    settings = sg_settings.with_overrides(send_concurrency=3)
    start_sending(engine, settings, campaign_id)

    def pause_after_first(result, total):
        if result.batches == 1:
            pause(engine, campaign_id)

    first = drain(engine, settings, campaign_id, on_batch=pause_after_first)
    counts = _counts(engine, campaign_id)
    # Out when the pause came: the three requests and the batch claimed ahead, sent on the first answer.
    assert first.sent in (10, 20, 30, 40) and len(fake_sendgrid.received) == first.sent
    assert (counts["sent"], counts["queued"], counts["in_flight"]) == (first.sent, 60 - first.sent, 0)
    resume(engine, campaign_id)
    assert drain(engine, settings, campaign_id).sent == 60 - first.sent
    assert len(fake_sendgrid.received) == 60 and all(len(v) == 1 for v in fake_sendgrid.received.values())


def test_cancel_sends_nothing_more(engine, sg_settings, fake_sendgrid, campaign_id):
    start_sending(engine, sg_settings, campaign_id)
    assert cancel(engine, campaign_id) == 30
    summary = drain(engine, sg_settings, campaign_id)
    assert summary.sent == 0 and fake_sendgrid.received == {}
    with pytest.raises(UserError, match="cancelled"):
        resume(engine, campaign_id)


def test_retry_failed_resends_only_the_failures(engine, sg_settings, fake_sendgrid, campaign_id):
    fake_sendgrid.plan(*[("status", 500)] * 3)  # the first batch gives up after 3 attempts
    first = send_campaign(engine, sg_settings, campaign_id, retry=NO_WAIT)
    assert first.failed == 10 and first.sent == 20
    assert retry_failed(engine, campaign_id) == 10
    again = drain(engine, sg_settings, campaign_id)
    assert again.sent == 10
    assert _counts(engine, campaign_id)["sent"] == 30
    assert len(fake_sendgrid.received) == 30 and all(len(v) == 1 for v in fake_sendgrid.received.values())


def test_slow_answer_is_ambiguous_until_the_operator_decides(engine, sg_settings, fake_sendgrid, campaign_id):
    fake_sendgrid.plan(("delay", 2.5))  # past the 1 s timeout: SendGrid got it, we never heard back
    first = send_campaign(engine, sg_settings, campaign_id, retry=NO_WAIT)
    assert first.ambiguous == 10 and first.sent == 20
    counts = _counts(engine, campaign_id)
    assert counts["ambiguous"] == 10 and counts["sent"] == 20
    import time
    time.sleep(2)  # let the slow request land at the fake
    assert all(len(v) == 1 for v in fake_sendgrid.received.values()) and len(fake_sendgrid.received) == 30
    assert resolve_ambiguous(engine, campaign_id, resend=False) == 10
    assert _counts(engine, campaign_id)["sent"] == 30
    from newsletter.delivery.throttle import ledger_window_count
    from datetime import timedelta
    assert ledger_window_count(engine)(timedelta(hours=1)) == 30  # the throttle counts them as sent


def test_resend_ambiguous_on_the_operators_word(engine, sg_settings, fake_sendgrid, campaign_id):
    fake_sendgrid.plan(("drop",))  # connection dropped before any answer: outcome unknown
    first = send_campaign(engine, sg_settings, campaign_id, retry=NO_WAIT)
    assert first.ambiguous == 10
    assert resolve_ambiguous(engine, campaign_id, resend=True) == 10
    again = drain(engine, sg_settings, campaign_id)
    assert again.sent == 10 and _counts(engine, campaign_id)["sent"] == 30
    with session_scope(engine) as session:
        assert session.get(models.Campaign, campaign_id).status == "sent"


def test_a_failed_record_stops_the_send_and_nothing_is_resent(engine, sg_settings, fake_sendgrid, campaign_id,
                                                               monkeypatch):
    """Answers are written behind the sending (a thread of their own on PostgreSQL). If writing
    one fails, the send stops with that error; the batches sent but not recorded stay in flight
    (ambiguous once their lease runs out), and a second drain sends none of them again."""
    from newsletter.delivery import dispatch

    real, written = dispatch.record_outcome, []

    def fails_on_the_second(engine_, campaign, outcome):
        written.append(sorted(outcome.sent))
        if len(written) == 2:
            raise RuntimeError("the database went away")
        real(engine_, campaign, outcome)

    monkeypatch.setattr(dispatch, "record_outcome", fails_on_the_second)
    start_sending(engine, sg_settings, campaign_id)
    with pytest.raises(RuntimeError, match="went away"):
        drain(engine, sg_settings, campaign_id)
    counts = _counts(engine, campaign_id)
    assert (counts["sent"], counts["in_flight"], counts["queued"]) == (10, 20, 0)
    monkeypatch.setattr(dispatch, "record_outcome", real)
    assert drain(engine, sg_settings, campaign_id).sent == 0
    assert len(fake_sendgrid.received) == 30 and all(len(v) == 1 for v in fake_sendgrid.received.values())


def test_each_accepted_request_is_logged_and_its_message_id_finds_the_ledger_row(engine, sg_settings, fake_sendgrid,
                                                                                  campaign_id):
    """The send log (throttle windows, the webhook's fallback) holds one row per request the
    provider accepted, with its X-Message-Id; an event that carries only ``sg_message_id`` and
    the address finds its ledger row through it."""
    from sqlalchemy import select

    from newsletter.tracking.webhook import ingest_events

    assert send_campaign(engine, sg_settings, campaign_id).sent == 30
    accepted = {r.message_id for r in fake_sendgrid.requests if r.status == 202}
    with session_scope(engine) as session:
        logged = session.execute(select(models.SendLog.message_id, models.SendLog.recipients)
                                 .where(models.SendLog.campaign_id == campaign_id)).all()
        assert sorted(logged) == sorted((m, 10) for m in accepted)
        delivery_id, email, message_id = session.execute(
            select(models.Delivery.id, models.Subscriber.email, models.Delivery.message_id)
            .join(models.Subscriber, models.Subscriber.id == models.Delivery.subscriber_id)
            .where(models.Delivery.campaign_id == campaign_id).order_by(models.Delivery.id.desc()).limit(1)).one()
        assert message_id in accepted
        ingest_events(session, [{"event": "delivered", "sg_event_id": "no-args", "email": email.upper(),
                                 "sg_message_id": f"{message_id}.filterdrecv-1", "timestamp": 1_700_000_000}])
    with session_scope(engine) as session:
        event = session.scalars(select(models.Event).where(models.Event.event_key == "sg:no-args")).one()
        assert (event.delivery_id, event.campaign_id) == (delivery_id, campaign_id)
