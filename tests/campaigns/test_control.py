"""Operator control on both stores: pause, resume, cancel, retry only the failures, resolve
ambiguous rows — each checked from the recipients' side through the fake SendGrid."""

from __future__ import annotations

import pytest

from cli_runs import run_newsletter
from factories import add_subscribers
from newsletter.campaigns import (
    cancel,
    create_campaign,
    drain,
    import_article,
    ledger_counts,
    pause,
    resolve_ambiguous,
    resume,
    retry_failed,
    send_campaign,
    start_sending,
)
from newsletter.db import models, session_scope
from newsletter.delivery.dispatch import RetryPolicy
from newsletter.errors import UserError
from waiting import wait_until

NO_WAIT = RetryPolicy(max_attempts=3, base_seconds=0.01, cap_seconds=0.02)


@pytest.fixture
def sg_settings(settings, fake_sendgrid):
    # One request out at a time: the fake's scripted answers then meet the batches in order.
    return settings.with_overrides(
        sendgrid_api_key=fake_sendgrid.api_key,
        sendgrid_host=fake_sendgrid.url,
        sendgrid_timeout=1.0,
        batch_size=10,
        send_concurrency=1,
    )


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


def test_with_several_requests_out_a_pause_stops_new_ones_and_records_those_out(
    engine, sg_settings, fake_sendgrid, campaign_id
):
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
    assert wait_until(lambda: len(fake_sendgrid.received) == 30)  # the slow request lands at the fake
    assert all(len(v) == 1 for v in fake_sendgrid.received.values())
    assert resolve_ambiguous(engine, campaign_id, resend=False) == 10
    assert _counts(engine, campaign_id)["sent"] == 30
    from datetime import timedelta

    from newsletter.delivery.throttle import ledger_window_count

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


def test_a_failed_record_stops_the_send_and_nothing_is_resent(
    engine, sg_settings, fake_sendgrid, campaign_id, monkeypatch
):
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


def test_each_accepted_request_is_logged_and_its_message_id_finds_the_ledger_row(
    engine, sg_settings, fake_sendgrid, campaign_id
):
    """The send log (throttle windows, the webhook's fallback) holds one row per request the
    provider accepted, with its X-Message-Id; an event that carries only ``sg_message_id`` and
    the address finds its ledger row through it."""
    from sqlalchemy import select

    from newsletter.tracking.webhook import ingest_events

    assert send_campaign(engine, sg_settings, campaign_id).sent == 30
    accepted = {r.message_id for r in fake_sendgrid.requests if r.status == 202}
    with session_scope(engine) as session:
        logged = session.execute(
            select(models.SendLog.message_id, models.SendLog.recipients).where(
                models.SendLog.campaign_id == campaign_id
            )
        ).all()
        assert sorted(logged) == sorted((m, 10) for m in accepted)
        delivery_id, email, message_id = session.execute(
            select(models.Delivery.id, models.Subscriber.email, models.Delivery.message_id)
            .join(models.Subscriber, models.Subscriber.id == models.Delivery.subscriber_id)
            .where(models.Delivery.campaign_id == campaign_id)
            .order_by(models.Delivery.id.desc())
            .limit(1)
        ).one()
        assert message_id in accepted
        ingest_events(
            session,
            [
                {
                    "event": "delivered",
                    "sg_event_id": "no-args",
                    "email": email.upper(),
                    "sg_message_id": f"{message_id}.filterdrecv-1",
                    "timestamp": 1_700_000_000,
                }
            ],
        )
    with session_scope(engine) as session:
        event = session.scalars(select(models.Event).where(models.Event.event_key == "sg:no-args")).one()
        assert (event.delivery_id, event.campaign_id) == (delivery_id, campaign_id)


# --- after a crashed sender: a batch claimed and abandoned (the worker was killed mid-request) ------


def _crash_mid_batch(engine, settings, campaign_id, *, lease_seconds: float = 600.0):
    """What `kill -9` leaves: a batch moved to in_flight under a worker's lease, never answered."""
    from newsletter.delivery.dispatch import claim_batch

    start_sending(engine, settings, campaign_id)
    claimed = claim_batch(engine, campaign_id, 10, "web-1:dead0001", lease_seconds)
    assert len(claimed.ids) == 10
    return claimed


def _status(engine, campaign_id, now=None):
    from newsletter.campaigns import campaign_status

    with session_scope(engine) as session:
        return campaign_status(session, campaign_id, now)


def test_status_after_a_crash_says_when_in_flight_rows_become_ambiguous_then_needs_a_decision(
    engine, sg_settings, fake_sendgrid, campaign_id
):
    from datetime import datetime, timedelta

    from newsletter.db.models import utcnow

    before = utcnow()
    _crash_mid_batch(engine, sg_settings, campaign_id)
    assert drain(engine, sg_settings, campaign_id).sent == 20  # the rest goes out; the dead batch is held
    status = _status(engine, campaign_id)
    assert (status["status"], status["in_flight"], status["ambiguous"]) == ("sending", 10, 0)
    [lease] = status["in_flight_leases"]
    until = datetime.fromisoformat(lease["lease_until"])
    assert lease["worker"] == "web-1:dead0001" and lease["rows"] == 10
    assert before + timedelta(seconds=590) < until < utcnow() + timedelta(seconds=610)
    assert lease["lease_until"] in status["next_step"]
    assert f"newsletter campaign resolve {campaign_id} --mark-sent | --resend-ambiguous" in status["next_step"]

    # The lease runs out with nobody left to record an answer: no longer "sending", and not "sent".
    later = _status(engine, campaign_id, now=until + timedelta(seconds=1))
    assert (later["status"], later["lifecycle_status"]) == ("needs_decision", "sent")
    assert (later["in_flight"], later["ambiguous"], later["sent"]) == (0, 10, 20)
    assert later["next_step"] == f"newsletter campaign resolve {campaign_id} --mark-sent | --resend-ambiguous"
    assert later["ambiguous_reasons"] == {"worker lease expired before the answer was recorded": 10}

    assert resolve_ambiguous(engine, campaign_id, resend=False) == 10
    done = _status(engine, campaign_id)
    assert (done["status"], done["ambiguous"], done["sent"], done["next_step"]) == ("sent", 0, 30, None)
    assert len(fake_sendgrid.received) == 20


def test_resolve_covers_rows_whose_lease_ran_out_with_no_worker_left_to_flag_them(
    engine, sg_settings, fake_sendgrid, campaign_id
):
    """No worker looked after the lease ran out, so the rows are still in flight: `resolve
    --resend-ambiguous` flags them first, then sends them again; the campaign finishes."""
    _crash_mid_batch(engine, sg_settings, campaign_id, lease_seconds=-1)  # the lease has run out
    assert _counts(engine, campaign_id)["in_flight"] == 10
    assert resolve_ambiguous(engine, campaign_id, resend=True) == 10
    assert drain(engine, sg_settings, campaign_id).sent == 30
    assert _status(engine, campaign_id)["status"] == "sent" and len(fake_sendgrid.received) == 30


def test_worker_exit_when_idle_names_rows_held_by_another_workers_lease_and_stops(
    engine, sg_settings, fake_sendgrid, campaign_id
):
    """It used to wait out the dead worker's lease (ten minutes by default) before exiting."""
    import threading

    from newsletter.campaigns import run_worker

    claimed = _crash_mid_batch(engine, sg_settings, campaign_id)
    stop, box = threading.Event(), {}
    thread = threading.Thread(
        target=lambda: box.update(stats=run_worker(engine, sg_settings, exit_when_idle=True, stop=stop))
    )
    thread.start()
    thread.join(timeout=60)  # it needs about a second; the lease holds for 600
    stop.set()
    thread.join()
    assert "stats" in box and box["stats"].sent == 20
    [held] = box["stats"].held
    assert (held.campaign_id, held.worker, held.rows) == (campaign_id, "web-1:dead0001", 10)
    assert (
        f"held by worker web-1:dead0001's lease until {held.lease_until.isoformat(timespec='seconds')}"
        in held.describe()
    )
    assert _counts(engine, campaign_id)["in_flight"] == len(claimed.ids)


def test_worker_flags_a_dead_workers_expired_lease_and_says_so(engine, sg_settings, fake_sendgrid, campaign_id, caplog):
    import logging

    from newsletter.campaigns import run_worker

    _crash_mid_batch(engine, sg_settings, campaign_id, lease_seconds=-1)
    with caplog.at_level(logging.INFO, logger="newsletter.campaigns.worker"):
        stats = run_worker(engine, sg_settings, exit_when_idle=True)
    assert stats.sent == 20 and stats.held == []
    assert any(
        "10 in-flight row(s) of a dead worker are now ambiguous" in r.getMessage()
        and f"campaign resolve {campaign_id}" in r.getMessage()
        for r in caplog.records
    )
    assert _status(engine, campaign_id)["status"] == "needs_decision"


def test_status_command_exits_3_and_names_resolve_when_rows_are_ambiguous(
    engine, db_url, sg_settings, fake_sendgrid, campaign_id, tmp_path
):
    import json
    import subprocess

    _crash_mid_batch(engine, sg_settings, campaign_id)
    drain(engine, sg_settings, campaign_id)
    store = {"NEWSLETTER_DATABASE_URL": db_url, "NEWSLETTER_SECRET_KEY": "x"}

    def status(*extra: str) -> subprocess.CompletedProcess:
        return run_newsletter(["campaign", "status", str(campaign_id), *extra], tmp_path, store)

    held = status()
    assert held.returncode == 0, held.stderr
    assert "10 recipient(s) in flight with worker web-1:dead0001, whose lease runs until" in held.stdout
    assert f"newsletter campaign resolve {campaign_id} --mark-sent | --resend-ambiguous" in held.stdout

    from sqlalchemy import update

    from newsletter.db.models import utcnow

    with session_scope(engine) as session:  # the lease runs out
        session.execute(
            update(models.Delivery).where(models.Delivery.status == "in_flight").values(lease_until=utcnow())
        )
    human = status()
    assert human.returncode == 3, human.stderr
    assert "needs a decision (sent; 10 recipient(s) ambiguous)" in human.stdout
    assert f"newsletter campaign resolve {campaign_id} --mark-sent" in human.stdout
    assert f"newsletter campaign resolve {campaign_id} --resend-ambiguous" in human.stdout
    scripted = status("--json")
    assert scripted.returncode == 3
    data = json.loads(scripted.stdout)
    assert (data["status"], data["lifecycle_status"], data["ambiguous"]) == ("needs_decision", "sent", 10)

    listed = run_newsletter(["campaign", "list", "--json"], tmp_path, store)
    row = next(r for r in json.loads(listed.stdout) if r["id"] == campaign_id)
    assert (row["status"], row["lifecycle_status"]) == ("needs_decision", "sent")  # the list never says "sent" alone
    table = run_newsletter(["campaign", "list"], tmp_path, store)
    assert "needs a decision" in table.stdout
