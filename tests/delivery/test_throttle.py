"""Throttling: the pace in a process, the windows in the store, and slowing down on 429."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from factories import add_article, add_campaign, add_subscribers
from newsletter.db import models, session_scope
from newsletter.db.models import utcnow
from newsletter.delivery.ledger_store import record_outcome
from newsletter.delivery.message import BatchOutcome
from newsletter.delivery.throttle import Limits, Throttle, ledger_window_count


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pace_spaces_batches_by_the_rate():
    clock = Clock()
    throttle = Throttle(Limits(rate_per_second=100), clock=clock, sleep=clock.sleep)
    for _ in range(3):
        throttle.pace(50)
    assert clock.slept == [0.5, 0.5]  # the first batch goes at once, then 50 / 100 s apart


def test_unlimited_never_waits():
    clock = Clock()
    throttle = Throttle(Limits(), clock=clock, sleep=clock.sleep)
    throttle.pace(1000)
    throttle.pace(1000)
    assert throttle.allowance(1000) == 1000 and clock.slept == []


def test_429_halves_the_rate_and_clean_batches_recover_it():
    throttle = Throttle(Limits(rate_per_second=100))
    throttle.slow_down()
    throttle.slow_down()
    assert throttle.rate == 25
    for _ in range(30):
        throttle.recover()
    assert throttle.rate == 100  # never above the configured rate


def test_window_shrinks_the_batch_and_waits_when_full():
    clock = Clock()
    used = {"hour": 950}
    throttle = Throttle(
        Limits(per_hour=1000), lambda window: used["hour"], clock=clock, sleep=clock.sleep, window_poll_seconds=60
    )
    assert throttle.allowance(500) == 50
    used["hour"] = 1000

    def fall_out(seconds: float) -> None:
        clock.sleep(seconds)
        used["hour"] = 400  # an hour later, older sends have left the window

    throttle.sleep = fall_out
    assert throttle.allowance(500) == 500
    assert clock.slept == [60]


def test_windows_count_recent_sends_across_campaigns(engine):
    """Sent: what the send log holds (written with each recorded answer); in flight: ledger rows
    of campaigns being sent. Failed and queued rows take no room."""
    ids = add_subscribers(engine, 6)
    with session_scope(engine) as session:
        article = add_article(session, content_hash="x")
        campaigns = [
            add_campaign(session, article.id, name, status="sending", template="t", html="", text="").id
            for name in ("one", "two")
        ]
        rows = [
            (campaigns[0], ids[0], "in_flight"),
            (campaigns[0], ids[1], "in_flight"),
            (campaigns[0], ids[3], "in_flight"),
            (campaigns[0], ids[4], "queued"),
            (campaigns[1], ids[5], "failed"),
        ]
        session.add_all(models.Delivery(campaign_id=c, subscriber_id=s, status=st) for c, s, st in rows)
        session.flush()
        first, second = session.scalars(
            select(models.Delivery.id).where(models.Delivery.subscriber_id.in_(ids[:2])).order_by(models.Delivery.id)
        ).all()
        now = utcnow()
        session.add_all(
            [
                models.SendLog(
                    campaign_id=campaigns[1],
                    message_id="m-50min",
                    recipients=1,
                    recorded_at=now - timedelta(minutes=50),
                ),
                models.SendLog(
                    campaign_id=campaigns[1], message_id="m-3h", recipients=1, recorded_at=now - timedelta(hours=3)
                ),
            ]
        )
    record_outcome(engine, campaigns[0], BatchOutcome(sent={first: "m-now", second: "m-now"}))  # the real path
    count = ledger_window_count(engine)
    assert count(timedelta(hours=1)) == 4  # two sent now and one 50 minutes ago, one in flight
    assert count(timedelta(days=1)) == 5
    with session_scope(engine) as session:
        session.execute(update(models.Campaign).where(models.Campaign.id == campaigns[0]).values(status="sent"))
    assert count(timedelta(hours=1)) == 3  # a finished campaign holds nothing in flight


def test_requests_out_at_once_is_a_setting_with_bounds(tmp_path):
    import pytest

    from newsletter.config import MAX_SEND_CONCURRENCY, load_settings
    from newsletter.errors import UserError

    assert load_settings({}, workdir=tmp_path).send_concurrency == 4
    assert load_settings({"NEWSLETTER_SEND_CONCURRENCY": "1"}, workdir=tmp_path).send_concurrency == 1
    for bad in ("0", str(MAX_SEND_CONCURRENCY + 1)):
        with pytest.raises(UserError, match="NEWSLETTER_SEND_CONCURRENCY"):
            load_settings({"NEWSLETTER_SEND_CONCURRENCY": bad}, workdir=tmp_path)


def test_several_sending_threads_book_the_rate_without_overlapping():
    """With several requests out, each sending thread paces its own batch: the bookings must
    not overlap, or the rate would be exceeded by the number of threads."""
    import threading
    import time

    throttle = Throttle(Limits(rate_per_second=1000.0), sleep=lambda seconds: time.sleep(0))  # waits let others in

    def book(batches: int) -> None:
        for _ in range(batches):
            throttle.pace(100)

    threads = [threading.Thread(target=book, args=(50,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 200 batches of 100 at 1000/s: the timeline is booked for 20 s, whatever the interleaving.
    assert abs(throttle._next_start - throttle.clock() - 20.0) < 1.0
