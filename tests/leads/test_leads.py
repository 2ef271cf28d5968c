"""Leads: created by a person's CTA click (never a machine's) or a signup, moved along a checked
pipeline with every change's who and when, scored from human engagement only, and told to the
director once (alert, daily digest). Every test runs on SQLite and PostgreSQL; time is a
parameter everywhere, never read from the clock."""

from __future__ import annotations

import csv
import email
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select

from factories import add_article, add_campaign
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.db.models import (
    CampaignLink,
    Delivery,
    Event,
    Lead,
    LeadStatusChange,
    Notification,
    Subscriber,
)
from newsletter.errors import NotFound, UserError
from newsletter.leads import (
    ScoreRules,
    alert_key,
    check_settings,
    create_signup_lead,
    engagement_score,
    history,
    leads_tick,
    list_leads,
    parse_points,
    score_leads,
    send_daily_digest,
    update_status,
)
from newsletter.notify import notification_status, outbox_path
from newsletter.tracking import RequestInfo, record_click, record_open
from repo_paths import REPO_DIR

UTC = timezone.utc
T0 = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)  # the campaign went out
BOOKING = "https://clinic.example/book"
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)  # a person's browser, as the web tests use
PERSON = RequestInfo(ip="203.0.113.77", user_agent=BROWSER, accept_language="en-US,en;q=0.9")
SCANNER = RequestInfo(ip="198.51.100.20", user_agent="Mozilla/5.0 (compatible; Barracuda Sentinel (EE))")
APPLE_PROXY = RequestInfo(ip="198.51.100.21", user_agent="Mozilla/5.0")  # Apple Mail Privacy Protection
REPO = REPO_DIR


@dataclass(frozen=True)
class World:
    campaign_id: int
    cta_link_id: int
    subscribers: dict[str, int]  # first name (lower case) → subscriber id
    deliveries: dict[str, int]  # first name (lower case) → delivery id


def build(engine: Engine, names: tuple[str, ...] = ("Ada", "Bob", "Cy", "Dan", "Eve")) -> World:
    with session_scope(engine) as s:
        article = add_article(s, slug="ketamine", title="Ketamine-assisted therapy")
        campaign = add_campaign(s, article.id, "March")
        read_more = CampaignLink(
            campaign_id=campaign.id,
            position=1,
            url="https://clinic.example/a/ketamine",
            label="Read more",
            kind="read_more",
        )
        cta = CampaignLink(campaign_id=campaign.id, position=2, url=BOOKING, label="Connect today", kind="cta")
        author = CampaignLink(
            campaign_id=campaign.id, position=3, url="https://clinic.example/team", label="Our team", kind="article"
        )
        s.add_all([read_more, cta, author])
        subscribers = {
            n.lower(): Subscriber(email=f"{n.lower()}@example.com", first_name=n, last_name="Reader") for n in names
        }
        s.add_all(subscribers.values())
        s.flush()
        deliveries = {
            k: Delivery(campaign_id=campaign.id, subscriber_id=v.id, status="sent", sent_at=T0)
            for k, v in subscribers.items()
        }
        s.add_all(deliveries.values())
        s.flush()
        return World(
            campaign.id, cta.id, {k: v.id for k, v in subscribers.items()}, {k: v.id for k, v in deliveries.items()}
        )


@pytest.fixture
def world(engine: Engine) -> World:
    return build(engine)


def click(engine: Engine, world: World, who: str, when: datetime, *, position: int = 2, request: RequestInfo = PERSON):  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return record_click(s, world.deliveries[who], position, request, when)


def open_(engine: Engine, world: World, who: str, when: datetime, request: RequestInfo = PERSON):  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return record_open(s, world.deliveries[who], request, when)


def lead_of(engine: Engine, world: World, who: str) -> Lead | None:
    with session_scope(engine) as s:
        return s.scalar(select(Lead).where(Lead.subscriber_id == world.subscribers[who]))


def changes(engine: Engine, lead_id: int) -> list[tuple[str | None, str, str, datetime, str | None]]:
    with session_scope(engine) as s:
        return [(c.from_status, c.to_status, c.changed_by, c.changed_at, c.note) for c in history(s, lead_id)]


def count(engine: Engine, model) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


# --- creation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        SCANNER,
        RequestInfo(ip="203.0.113.77", user_agent=""),
        RequestInfo(ip="203.0.113.77", user_agent=BROWSER, method="HEAD", accept_language="en"),
    ],
    ids=["scanner", "no-agent", "head"],
)
def test_machine_clicks_create_no_leads(engine, world, request_) -> None:  # type: ignore[no-untyped-def]
    result = click(engine, world, "bob", T0 + timedelta(hours=3), request=request_)
    assert result.is_machine and result.lead_id is None and result.url == BOOKING
    assert count(engine, Lead) == 0 and count(engine, LeadStatusChange) == 0
    with session_scope(engine) as s:
        assert s.scalars(select(Event.type).order_by(Event.id)).all() == ["click"]


def test_a_too_fast_click_is_a_machine_and_no_lead(engine, world) -> None:  # type: ignore[no-untyped-def]
    result = click(engine, world, "bob", T0 + timedelta(seconds=2))
    assert (result.is_machine, result.reason, result.lead_id) == (True, "too_fast_after_delivery", None)
    assert count(engine, Lead) == 0


def test_a_person_s_cta_click_creates_a_lead_with_its_creation_in_the_history(engine, world) -> None:  # type: ignore[no-untyped-def]
    first = T0 + timedelta(hours=3)
    result = click(engine, world, "ada", first)
    assert not result.is_machine and result.lead_id is not None
    lead = lead_of(engine, world, "ada")
    assert lead is not None and lead.id == result.lead_id
    assert (lead.status, lead.source, lead.campaign_id, lead.link_id, lead.cta_clicks) == (
        "new",
        "cta_click",
        world.campaign_id,
        world.cta_link_id,
        1,
    )
    assert (lead.created_at, lead.status_changed_at, lead.last_engaged_at) == (first, first, first)
    assert changes(engine, lead.id) == [(None, "new", "system:cta_click", first, None)]

    later = first + timedelta(days=1)
    assert click(engine, world, "ada", later).lead_id == lead.id  # warms the same lead
    click(engine, world, "ada", first + timedelta(hours=1))  # a late batch, older than the last click
    lead = lead_of(engine, world, "ada")
    assert lead is not None and (lead.cta_clicks, lead.last_engaged_at, lead.created_at) == (3, later, first)
    assert changes(engine, lead.id) == [(None, "new", "system:cta_click", first, None)]  # still one creation


def test_simultaneous_first_clicks_make_one_lead_with_one_creation(engine, world) -> None:  # type: ignore[no-untyped-def]
    import threading

    start = threading.Barrier(4)
    ids: list[int] = []

    def go(n: int) -> None:
        start.wait()
        ids.append(click(engine, world, "ada", T0 + timedelta(hours=3, minutes=n)).lead_id)

    threads = [threading.Thread(target=go, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 4 and len(set(ids)) == 1
    lead = lead_of(engine, world, "ada")
    assert lead is not None and lead.cta_clicks == 4 and lead.last_engaged_at == T0 + timedelta(hours=3, minutes=3)
    assert [c[:3] for c in changes(engine, ids[0])] == [(None, "new", "system:cta_click")]


def test_a_signup_asking_for_a_consultation_is_a_lead(engine, world) -> None:  # type: ignore[no-untyped-def]
    when = T0 + timedelta(days=2)
    with session_scope(engine) as s:
        made = create_signup_lead(s, "  CY@Example.com ", note="asked for an evening slot", now=when)
    assert made.created and made.status == "new"
    lead = lead_of(engine, world, "cy")
    assert lead is not None and (lead.source, lead.cta_clicks, lead.campaign_id, lead.note) == (
        "signup",
        0,
        None,
        "asked for an evening slot",
    )
    assert changes(engine, made.lead_id) == [(None, "new", "system:signup", when, "asked for an evening slot")]

    with session_scope(engine) as s:  # the form sent twice: still one lead, nothing changed
        again = create_signup_lead(s, "cy@example.com", now=when + timedelta(minutes=1))
    assert (again.lead_id, again.created) == (made.lead_id, False)
    assert count(engine, Lead) == 1 and count(engine, LeadStatusChange) == 1

    # Later the reader presses the CTA: same lead, now attributed to the campaign; no second creation.
    assert click(engine, world, "cy", when + timedelta(days=1)).lead_id == made.lead_id
    lead = lead_of(engine, world, "cy")
    assert lead is not None and (lead.source, lead.cta_clicks, lead.campaign_id, lead.link_id) == (
        "signup",
        1,
        world.campaign_id,
        world.cta_link_id,
    )
    assert len(changes(engine, made.lead_id)) == 1


@pytest.mark.parametrize(
    ("address", "error", "words"),
    [
        ("nobody@example.com", NotFound, "no subscriber nobody@example.com"),
        ("not-an-address", UserError, "not an email address"),
    ],
)
def test_a_signup_lead_needs_an_existing_subscriber(engine, world, address, error, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=words) as caught, session_scope(engine) as s:
        create_signup_lead(s, address)
    assert caught.value.where == "EMAIL"
    assert count(engine, Lead) == 0


def test_an_erased_subscriber_cannot_become_a_lead(engine, world) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        s.get(Subscriber, world.subscribers["eve"]).status = "erased"
    with pytest.raises(UserError, match="erased"), session_scope(engine) as s:
        create_signup_lead(s, "eve@example.com")
    assert count(engine, Lead) == 0


# --- status changes ----------------------------------------------------------------------------


def test_status_changes_are_recorded_with_who_and_when(engine, world) -> None:  # type: ignore[no-untyped-def]
    created = T0 + timedelta(hours=3)
    lead_id = click(engine, world, "ada", created).lead_id
    steps = [
        ("contacted", "maria", "called, left a message", created + timedelta(hours=2)),
        ("booked", "sam", None, created + timedelta(days=1)),
        ("client", "maria", "first session done", created + timedelta(days=8)),
    ]
    for status, who, note, when in steps:
        with session_scope(engine) as s:
            change = update_status(s, lead_id, status, by=who, note=note, now=when)
        assert (change.to_status, change.changed_by, change.changed_at) == (status, who, when)
    assert changes(engine, lead_id) == [
        (None, "new", "system:cta_click", created, None),
        ("new", "contacted", "maria", created + timedelta(hours=2), "called, left a message"),
        ("contacted", "booked", "sam", created + timedelta(days=1), None),
        ("booked", "client", "maria", created + timedelta(days=8), "first session done"),
    ]
    lead = lead_of(engine, world, "ada")
    assert lead is not None and (lead.status, lead.status_changed_at, lead.note) == (
        "client",
        created + timedelta(days=8),
        "first session done",
    )


def test_a_lost_lead_can_be_reopened(engine, world) -> None:  # type: ignore[no-untyped-def]
    lead_id = click(engine, world, "ada", T0 + timedelta(hours=3)).lead_id
    for status in ("lost", "contacted", "not_a_fit", "contacted"):
        with session_scope(engine) as s:
            update_status(s, lead_id, status, by="maria")
    assert [c[1] for c in changes(engine, lead_id)] == ["new", "lost", "contacted", "not_a_fit", "contacted"]


@pytest.mark.parametrize(
    ("path", "target", "words"),
    [
        ((), "client", "lead {id} is 'new' \\(new\\): it can go to contacted, booked, not_a_fit or lost, not 'client'"),
        ((), "won", "unknown lead status 'won'; use one of new, contacted, booked, client, not_a_fit, lost"),
        ((), "new", "lead {id} is already 'new'"),
        (("contacted",), "new", "it can go to booked, not_a_fit or lost, not 'new'"),
        (("booked", "client"), "lost", "'client' \\(became a client\\): that is final"),
        (("lost",), "booked", "it can go to contacted, not 'booked'"),
    ],
)
def test_invalid_or_unknown_statuses_are_refused_clearly(engine, world, path, target, words) -> None:  # type: ignore[no-untyped-def]
    lead_id = click(engine, world, "ada", T0 + timedelta(hours=3)).lead_id
    for status in path:
        with session_scope(engine) as s:
            update_status(s, lead_id, status, by="maria")
    before = changes(engine, lead_id)
    with pytest.raises(UserError, match=words.format(id=lead_id)) as caught, session_scope(engine) as s:
        update_status(s, lead_id, target, by="maria")
    assert caught.value.where == "--status"
    assert changes(engine, lead_id) == before  # nothing written
    lead = lead_of(engine, world, "ada")
    assert lead is not None and lead.status == before[-1][1]


def test_unknown_lead_and_missing_person_are_refused(engine, world) -> None:  # type: ignore[no-untyped-def]
    lead_id = click(engine, world, "ada", T0 + timedelta(hours=3)).lead_id
    with pytest.raises(NotFound, match="no lead 999999"), session_scope(engine) as s:
        update_status(s, 999999, "contacted", by="maria")
    with pytest.raises(UserError, match="say who") as caught, session_scope(engine) as s:
        update_status(s, lead_id, "contacted", by="  ")
    assert caught.value.where == "--by" and len(changes(engine, lead_id)) == 1


# --- scoring -----------------------------------------------------------------------------------

NOW = T0 + timedelta(days=30)


def engagement_fixture(engine: Engine, world: World) -> None:
    """Ada: known human and machine events at known ages; Bob: machines only; Cy: a signup."""
    days = lambda n: NOW - timedelta(days=n)  # noqa: E731
    assert not open_(engine, world, "ada", days(14)).is_machine  # 1 × ½
    assert not open_(engine, world, "ada", days(28)).is_machine  # 1 × ¼
    assert not click(engine, world, "ada", days(7), position=1).is_machine  # 3 × 2^-½
    cta = click(engine, world, "ada", days(1))  # 10 × 2^(-1/14), via its lead event
    assert cta.lead_id is not None and not cta.is_machine
    # What never scores:
    assert open_(engine, world, "ada", days(1), APPLE_PROXY).is_machine  # Apple's proxy
    assert click(engine, world, "ada", days(2), position=1, request=SCANNER).is_machine
    assert click(engine, world, "ada", days(3), request=SCANNER).is_machine  # a scanner on the CTA
    assert not open_(engine, world, "ada", NOW + timedelta(days=1)).is_machine  # after `now`
    assert not open_(engine, world, "ada", days(200)).is_machine  # past ten half-lives
    with session_scope(engine) as s:  # a provider's open (SendGrid tracking is off; ours counts)
        s.execute(
            insert(Event).values(
                event_key="sg:x1",
                type="open",
                source="sendgrid",
                is_machine=False,
                subscriber_id=world.subscribers["ada"],
                campaign_id=world.campaign_id,
                delivery_id=world.deliveries["ada"],
                occurred_at=days(1),
            )
        )
    assert click(engine, world, "bob", days(1), request=SCANNER).lead_id is None
    with session_scope(engine) as s:
        create_signup_lead(s, "cy@example.com", now=days(5))


ADA_BY_HAND = 1 * 0.5 + 1 * 0.25 + 3 * 2**-0.5 + 10 * 2 ** (-1 / 14)  # = 12.38827…


def test_score_from_human_events_only_equals_the_hand_computed_value(engine, world, settings) -> None:  # type: ignore[no-untyped-def]
    engagement_fixture(engine, world)
    with session_scope(engine) as s:
        assert score_leads(s, NOW, settings) == 1  # Ada's lead changed; Cy's stays 0
    ada, cy = lead_of(engine, world, "ada"), lead_of(engine, world, "cy")
    assert ada is not None and cy is not None and lead_of(engine, world, "bob") is None
    assert (ada.score, ada.last_engaged_at) == (round(ADA_BY_HAND), NOW - timedelta(days=1))
    with session_scope(engine) as s:  # what the director reads in `newsletter leads`
        assert [(row.email, row.score) for row in list_leads(s)] == [("ada@example.com", 12), ("cy@example.com", 0)]
    assert (cy.score, cy.last_engaged_at) == (0, None)
    with session_scope(engine) as s:
        from newsletter.leads.scoring import lead_scores

        exact = lead_scores(s, NOW, ScoreRules.from_settings(settings))
    assert exact[ada.id][0] == pytest.approx(ADA_BY_HAND, rel=1e-9)
    with session_scope(engine) as s:
        assert score_leads(s, NOW, settings) == 0  # nothing moved: nothing written


def test_points_and_half_life_come_from_the_settings(engine, world, settings) -> None:  # type: ignore[no-untyped-def]
    engagement_fixture(engine, world)
    custom = settings.with_overrides(lead_points="open=2, cta=40", lead_half_life_days=7.0)
    by_hand = 2 * 0.25 + 2 * 0.0625 + 3 * 0.5 + 40 * 2 ** (-1 / 7)  # click keeps its default 3
    with session_scope(engine) as s:
        score_leads(s, NOW, custom)
    ada = lead_of(engine, world, "ada")
    assert ada is not None and ada.score == round(by_hand) == 38


def test_scores_fade_with_time(engine, world, settings) -> None:  # type: ignore[no-untyped-def]
    engagement_fixture(engine, world)
    scores = []
    for later in (0, 14, 28, 70):
        with session_scope(engine) as s:
            score_leads(s, NOW + timedelta(days=later), settings)
        ada = lead_of(engine, world, "ada")
        assert ada is not None
        scores.append(ada.score)
    # Everything halves every 14 days; the open at NOW + 1 day counts once it has happened.
    by_hand = [
        ADA_BY_HAND * 2 ** (-later / 14) + (2 ** (-(later - 1) / 14) if later >= 1 else 0) for later in (0, 14, 28, 70)
    ]
    assert scores == [round(x) for x in by_hand] == [12, 7, 3, 0]


def test_engagement_score_is_a_pure_function() -> None:
    rules = ScoreRules(parse_points("open=1,click=3,cta=10"), 14.0)
    events = [("cta", NOW), ("click", NOW - timedelta(days=14)), ("open", NOW + timedelta(hours=1))]
    assert engagement_score(events, NOW, rules) == pytest.approx(10 + 1.5)


@pytest.mark.parametrize(
    ("points", "half_life", "where", "words"),
    [
        ("open=1,views=3", 14.0, "NEWSLETTER_LEAD_POINTS", "kind one of open, click, cta"),
        ("open=x", 14.0, "NEWSLETTER_LEAD_POINTS", "must be a number"),
        ("cta=-5", 14.0, "NEWSLETTER_LEAD_POINTS", "zero or more"),
        ("open=1", 0.0, "NEWSLETTER_LEAD_HALF_LIFE_DAYS", "positive number of days"),
    ],
)
def test_bad_scoring_settings_are_named(points, half_life, where, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match=words) as caught:
        ScoreRules.from_settings(Settings(lead_points=points, lead_half_life_days=half_life))
    assert caught.value.where == where


# --- the director: alerts ----------------------------------------------------------------------


def alert_file(settings: Settings, lead_id: int) -> Path:
    return outbox_path(settings, alert_key(lead_id))


def test_a_new_cta_lead_alerts_the_director_once(engine, world, settings) -> None:  # type: ignore[no-untyped-def]
    settings = settings.with_overrides(default_timezone="America/Los_Angeles")
    clicked = datetime(2026, 3, 10, 16, 31, tzinfo=UTC)  # 09:31 PDT
    lead_id = click(engine, world, "ada", clicked).lead_id
    handled = click(engine, world, "bob", clicked).lead_id
    with session_scope(engine) as s:
        create_signup_lead(s, "cy@example.com", now=clicked)  # signups: in the digest, no alert
        update_status(s, handled, "contacted", by="maria", now=clicked)  # staff were quicker: no alert
    assert leads_tick(engine, settings, clicked + timedelta(seconds=20)).alerts_sent == 0  # still settling
    assert not alert_file(settings, lead_id).exists()
    result = leads_tick(engine, settings, clicked + timedelta(minutes=2))
    assert (result.alerts_sent, result.alerts_failed) == (1, 0)
    msg = email.message_from_bytes(alert_file(settings, lead_id).read_bytes(), policy=policy.default)
    assert msg["To"] == settings.director_email and msg["Subject"] == f"New lead #{lead_id} from “March”"
    assert "Ada" not in msg["Subject"] and "ada@" not in msg["Subject"]  # lock screens show subjects
    text = msg.get_body(("plain",)).get_content()
    assert "Email: ada@example.com" in text and "Name:  Ada Reader" in text
    assert 'campaign "March"' in text and 'link "Connect today"' in text
    assert "Tue 10 Mar 2026, 09:31 PDT" in text and "Score: 10 (1 CTA click)" in text
    assert f"newsletter leads update {lead_id} --status contacted" in text
    assert "ada@example.com" in msg.get_body(("html",)).get_content()
    assert notification_status(engine, alert_key(lead_id)) == "sent"
    assert leads_tick(engine, settings, clicked + timedelta(minutes=5)).alerts_sent == 0
    with session_scope(engine) as s:
        assert s.scalars(select(Notification.key)).all() == [alert_key(lead_id)]


def test_alert_escapes_what_readers_typed(engine, settings) -> None:  # type: ignore[no-untyped-def]
    world = build(engine, names=("<b>Mallory</b>",))
    clicked = T0 + timedelta(hours=1)
    lead_id = click(engine, world, "<b>mallory</b>", clicked).lead_id
    assert leads_tick(engine, settings, clicked + timedelta(minutes=2)).alerts_sent == 1
    html = (
        email.message_from_bytes(alert_file(settings, lead_id).read_bytes(), policy=policy.default)
        .get_body(("html",))
        .get_content()
    )
    assert "&lt;b&gt;Mallory&lt;/b&gt;" in html and "<b>Mallory" not in html


def test_old_leads_get_no_alert_flood(engine, world, settings) -> None:  # type: ignore[no-untyped-def]
    click(engine, world, "ada", T0 + timedelta(hours=1))
    assert leads_tick(engine, settings, T0 + timedelta(days=8)).alerts_sent == 0
    assert count(engine, Notification) == 0


def test_a_failed_alert_is_retried_on_the_next_tick(engine, world, settings, fake_sendgrid) -> None:  # type: ignore[no-untyped-def]
    sg = settings.with_overrides(
        sendgrid_api_key=fake_sendgrid.api_key, sendgrid_host=fake_sendgrid.url, sendgrid_timeout=5.0
    )
    clicked = T0 + timedelta(hours=1)
    lead_id = click(engine, world, "ada", clicked).lead_id
    fake_sendgrid.plan(("status", 500))
    assert leads_tick(engine, sg, clicked + timedelta(minutes=2)).alerts_failed == 1
    assert notification_status(engine, alert_key(lead_id)) == "failed"
    assert leads_tick(engine, sg, clicked + timedelta(minutes=3)).alerts_sent == 1
    assert leads_tick(engine, sg, clicked + timedelta(minutes=4)).alerts_sent == 0
    [received] = fake_sendgrid.inbox(settings.director_email)
    assert received.subject == f"New lead #{lead_id} from “March”" and "ada@example.com" in received.text


def test_a_click_taken_back_by_a_burst_alerts_nobody(engine, world, settings) -> None:  # type: ignore[no-untyped-def]
    at = T0 + timedelta(hours=1)
    assert click(engine, world, "ada", at).lead_id is not None  # looks like a person…
    for n, position in enumerate((1, 3)):  # …until a scanner's burst over the message's links
        click(engine, world, "ada", at + timedelta(milliseconds=200 * (n + 1)), position=position)
    assert lead_of(engine, world, "ada") is None
    assert leads_tick(engine, settings, at + timedelta(minutes=2)).alerts_sent == 0


# --- the director: the daily digest ------------------------------------------------------------


def digest_world(engine: Engine, world: World) -> dict[str, int]:
    """Ada: new today. Dan: older, contacted, engaged since: warm. Eve: a client, very engaged.
    Bob: an old lead gone cold."""
    ids = {}
    ids["bob"] = click(engine, world, "bob", datetime(2026, 3, 2, 18, tzinfo=UTC)).lead_id
    ids["dan"] = click(engine, world, "dan", datetime(2026, 3, 9, 10, tzinfo=UTC)).lead_id
    ids["eve"] = click(engine, world, "eve", datetime(2026, 3, 9, 11, tzinfo=UTC)).lead_id
    ids["ada"] = click(engine, world, "ada", datetime(2026, 3, 10, 2, tzinfo=UTC)).lead_id
    for who in ("dan", "eve"):
        open_(engine, world, who, datetime(2026, 3, 10, 1, tzinfo=UTC))
        click(engine, world, who, datetime(2026, 3, 10, 1, 5, tzinfo=UTC), position=1)
    with session_scope(engine) as s:
        update_status(s, ids["dan"], "contacted", by="maria")
        for status in ("booked", "client"):
            update_status(s, ids["eve"], status, by="maria")
    return ids


def test_the_daily_digest_goes_once_a_local_day_at_its_hour(engine, world, settings) -> None:  # type: ignore[no-untyped-def]
    settings = settings.with_overrides(default_timezone="America/Los_Angeles", digest_at="08:00")
    ids = digest_world(engine, world)
    # 2026-03-10 08:00 in Los Angeles is 15:00 UTC (daylight time began on the 8th).
    assert send_daily_digest(engine, settings, datetime(2026, 3, 10, 14, 59, tzinfo=UTC)) is False
    assert count(engine, Notification) == 0
    assert send_daily_digest(engine, settings, datetime(2026, 3, 10, 15, 0, tzinfo=UTC)) is True
    assert send_daily_digest(engine, settings, datetime(2026, 3, 10, 23, 0, tzinfo=UTC)) is False
    assert (
        send_daily_digest(engine, settings, datetime(2026, 3, 11, 6, 59, tzinfo=UTC)) is False
    )  # still the 10th there
    path = outbox_path(settings, "digest:2026-03-10")
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert msg["Subject"] == "Leads for Tue 10 Mar 2026: 1 new, 1 warm" and msg["To"] == settings.director_email
    text = msg.get_body(("plain",)).get_content()
    new_part, warm_part = text.split("Warm (score 10 or more, not yet booked)")
    assert "New since Mon 09 Mar 2026, 08:00 PDT: 1" in new_part
    assert f"#{ids['ada']}  Ada Reader <ada@example.com>  new" in new_part
    assert f"#{ids['dan']}  Dan Reader <dan@example.com>  contacted" in warm_part
    for absent in ("bob", "eve"):
        assert f"#{ids[absent]} " not in text and f"{absent}@example.com" not in text
    html = msg.get_body(("html",)).get_content()
    assert "dan@example.com" in html and "eve@example.com" not in html

    assert send_daily_digest(engine, settings, datetime(2026, 3, 11, 15, 1, tzinfo=UTC)) is True
    with session_scope(engine) as s:
        assert sorted(s.scalars(select(Notification.key))) == ["digest:2026-03-10", "digest:2026-03-11"]


def test_a_quiet_day_gets_no_digest(engine, world, settings) -> None:  # type: ignore[no-untyped-def]
    """ "0 new, 0 warm" is no news: nothing is mailed, the day is settled (tests/scheduling/test_periodic.py)."""
    assert send_daily_digest(engine, settings, datetime(2026, 3, 10, 8, 0, tzinfo=UTC)) is False  # UTC by default
    assert not outbox_path(settings, "digest:2026-03-10").exists()


@pytest.mark.parametrize(
    ("change", "where"),
    [({"digest_at": "8am"}, "NEWSLETTER_DIGEST_AT"), ({"default_timezone": "Mars/Olympus"}, "NEWSLETTER_TIMEZONE")],
)
def test_bad_digest_settings_are_named(engine, settings, change, where) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError) as caught:
        send_daily_digest(engine, settings.with_overrides(**change), T0)
    assert caught.value.where == where
    with pytest.raises(UserError) as early:  # what a daemon calls when it starts
        check_settings(settings.with_overrides(**change))
    assert early.value.where == where
    check_settings(settings)


# --- reading -----------------------------------------------------------------------------------


def test_list_filters_by_status_and_checks_it(engine, world) -> None:  # type: ignore[no-untyped-def]
    a = click(engine, world, "ada", T0 + timedelta(hours=1)).lead_id
    b = click(engine, world, "bob", T0 + timedelta(hours=2)).lead_id
    with session_scope(engine) as s:
        update_status(s, b, "contacted", by="maria")
        assert [r.id for r in list_leads(s, "contacted")] == [b]
        assert {r.id for r in list_leads(s)} == {a, b}
        with pytest.raises(UserError, match="unknown lead status 'won'"):
            list_leads(s, "won")


# --- the commands ------------------------------------------------------------------------------


@pytest.fixture
def cli(db_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """``newsletter leads …`` in this process (fast); UserError comes back as the result's exception."""
    from typer.testing import CliRunner

    from newsletter.cli import app

    monkeypatch.chdir(tmp_path)  # no stray .env or newsletter.toml
    for name in [k for k in os.environ if k.startswith(("NEWSLETTER_", "SENDGRID_"))]:
        monkeypatch.delenv(name)
    env = {"NEWSLETTER_DATABASE_URL": db_url, "NEWSLETTER_SECRET_KEY": "k", "USER": "reception", "COLUMNS": "200"}
    return lambda *args, **extra: CliRunner().invoke(app, ["leads", *args], env={**env, **extra})


def test_the_leads_commands(engine, world, cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lead_id = click(engine, world, "ada", T0 + timedelta(hours=1)).lead_id
    with session_scope(engine) as s:
        s.get(Subscriber, world.subscribers["bob"]).first_name = '=HYPERLINK("http://evil")'

    listed = cli("list", "--json")
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert (row["id"], row["email"], row["status"], row["campaign"]) == (lead_id, "ada@example.com", "new", "March")
    table = cli("list")
    assert table.exit_code == 0 and "1 lead(s)" in table.stdout and "March" in table.stdout  # (rich wraps at 80)
    assert "No leads with status client." in cli("list", "--status", "client").stdout

    moved = cli("update", str(lead_id), "--status", "contacted", "--note", "called")
    assert moved.exit_code == 0, moved.output
    assert "new → contacted (by reception)" in moved.stdout  # who: the login name by default
    unknown = cli("update", str(lead_id), "--status", "won", "--by", "maria")
    assert isinstance(unknown.exception, UserError) and "unknown lead status 'won'" in str(unknown.exception)
    nobody = cli("update", str(lead_id), "--status", "booked", USER="", LOGNAME="", USERNAME="")
    if not isinstance(nobody.exception, UserError):  # getpass found a name in the password database
        assert nobody.exit_code == 0 and changes(engine, lead_id)[-1][1] == "booked"
        cli("update", str(lead_id), "--status", "contacted", "--by", "maria")
    by_name = cli("update", str(lead_id), "--status", "lost", "--by", "front desk", "--json")
    assert json.loads(by_name.stdout)["changed_by"] == "front desk"
    cli("update", str(lead_id), "--status", "contacted", "--by", "front desk", "--note", "called back")

    shown = json.loads(cli("show", str(lead_id), "--json").stdout)
    history_rows = [(h["from_status"], h["to_status"], h["changed_by"]) for h in shown["history"]]
    assert history_rows[:2] == [(None, "new", "system:cta_click"), ("new", "contacted", "reception")]
    assert history_rows[-2:] == [("contacted", "lost", "front desk"), ("lost", "contacted", "front desk")]
    assert shown["next"] == ["booked", "not_a_fit", "lost"] and shown["note"] == "called back"
    human = cli("show", str(lead_id))
    assert human.exit_code == 0 and "front desk" in human.stdout and "Next: booked, not_a_fit, lost" in human.stdout
    assert isinstance(cli("show", "999999").exception, NotFound)

    missing = cli("add", "nobody@example.com")
    assert isinstance(missing.exception, NotFound) and missing.exception.where == "EMAIL"
    added = json.loads(cli("add", "bob@example.com", "--source", "signup", "--json").stdout)
    assert added["created"] is True
    assert "nothing changed" in cli("add", "bob@example.com").stdout

    path = tmp_path / "leads.csv"
    exported = cli("export", "--csv", str(path))
    assert exported.exit_code == 0, exported.output
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["email"] for r in rows} == {"ada@example.com", "bob@example.com"}
    bob = next(r for r in rows if r["email"] == "bob@example.com")
    assert bob["first_name"].startswith("'=") and bob["source"] == "signup"  # a formula stays text
    nowhere = cli("export", "--csv", str(tmp_path / "no" / "such" / "leads.csv"))
    assert isinstance(nowhere.exception, UserError) and nowhere.exception.where == "--csv"


def test_a_refused_change_is_one_line_and_exit_code_1(engine, world, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The real command, as a person runs it: no traceback, the place named, exit code 1."""
    lead_id = click(engine, world, "ada", T0 + timedelta(hours=1)).lead_id
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    env.update(NEWSLETTER_DATABASE_URL=db_url, NEWSLETTER_SECRET_KEY="k", PYTHONPATH=str(REPO), COLUMNS="200")
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "leads", "update", str(lead_id), "--status", "client", "--by", "maria"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --status: lead {lead_id} is 'new' (new): it can go to contacted, booked, not_a_fit or lost, "
        "not 'client'"
    ]
    assert len(changes(engine, lead_id)) == 1
