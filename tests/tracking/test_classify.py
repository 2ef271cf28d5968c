"""Human or machine, rule by rule: the pure classifier (every reason and every doubt), bursts, the
configurable lists, and one function for the pixel, the redirect and the webhook. Store tests run
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from test_tracking import A_CLICK, BROWSER, HUMAN, build_world

from newsletter.db import session_scope
from newsletter.db.models import CampaignLink, Delivery, Event, Lead
from newsletter.tracking import (
    DOUBTS,
    REASONS,
    Classifier,
    RequestInfo,
    classify,
    find_bursts,
    ingest_events,
    record_click,
    record_open,
)

BASE = {**A_CLICK, "accept_language": "en-US,en;q=0.9"}


def verdict(**overrides):  # type: ignore[no-untyped-def]
    return classify(**{**BASE, **overrides})


# --- machine reasons, one by one ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"method": "HEAD"}, "head_request"),
        ({"link_kind": "honeypot"}, "honeypot"),
        ({"kind": "open", "link_kind": None, "sg_machine_open": True}, "sg_machine_open"),
        ({"user_agent": ""}, "no_user_agent"),
        ({"user_agent": "Mozilla/5.0 (compatible; Mimecast-Scanner)"}, "scanner_user_agent"),
        ({"kind": "open", "user_agent": "Mozilla/5.0"}, "apple_mpp"),
        ({"ip": "209.222.80.10"}, "scanner_network"),
        ({"seconds_since_sent": 4.9}, "too_fast_after_delivery"),
        ({"burst": True}, "burst_clicks"),
    ],
)
def test_each_machine_reason(overrides, reason) -> None:  # type: ignore[no-untyped-def]
    v = verdict(**overrides)
    assert (v.is_machine, v.reason, v.doubt, v.uncertain) == (True, reason, None, False)
    assert reason in REASONS


def test_rule_order() -> None:
    assert verdict(method="HEAD", link_kind="honeypot").reason == "head_request"
    assert verdict(kind="open", sg_machine_open=True, user_agent="").reason == "sg_machine_open"
    assert verdict(kind="click", sg_machine_open=True).reason is None  # only opens carry that flag
    assert verdict(seconds_since_sent=1, burst=True).reason == "too_fast_after_delivery"
    assert verdict(kind="open", burst=True, link_kind=None).reason is None  # opens have no bursts
    assert verdict(user_agent="curl/8", ip="64.235.150.1").reason == "scanner_user_agent"


# --- doubts: human, but not sure ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "doubt"),
    [
        ({}, None),
        ({"seconds_since_sent": 5.0}, "quick_click"),
        ({"seconds_since_sent": 29.9}, "quick_click"),
        ({"seconds_since_sent": 30.0}, None),
        ({"user_agent": "Outlook-iOS/709.2226530.prod.iphone (3.24.1)"}, "unknown_agent"),
        ({"user_agent": "SomeClient/1.0"}, "unknown_agent"),
        ({"accept_language": ""}, "no_accept_language"),
        ({"accept_language": "   "}, "no_accept_language"),
        ({"accept_language": None}, None),  # unknown (the webhook): no doubt
        ({"seconds_since_sent": None}, None),
        (
            {"kind": "open", "link_kind": None, "accept_language": "", "user_agent": "SomeClient/1"},
            None,
        ),  # opens: never
    ],
)
def test_each_doubt(overrides, doubt) -> None:  # type: ignore[no-untyped-def]
    v = verdict(**overrides)
    assert (v.is_machine, v.reason, v.doubt, v.uncertain) == (False, None, doubt, doubt is not None)
    assert doubt is None or doubt in DOUBTS


# --- bursts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clicks", "expected"),
    [
        ([], set()),
        ([(0.0, "a"), (0.2, "b")], set()),  # two links: a fast person with two tabs
        ([(0.0, "a"), (0.2, "b"), (0.4, "c")], {0, 1, 2}),
        ([(0.0, "a"), (0.3, "a"), (0.5, "a"), (0.9, "b")], set()),  # one link many times is not "many links"
        ([(0.0, "a"), (1.0, "b"), (2.0, "c")], set()),  # a then b, b then c: never three within a second
        ([(10.0, "a"), (10.0, "b"), (11.0, "c"), (40.0, "d")], {0, 1, 2}),  # whole seconds (webhook): closed window
        ([(5.0, "c"), (0.0, "x"), (4.5, "b"), (4.2, "a")], {0, 2, 3}),  # any order
    ],
)
def test_find_bursts(clicks, expected) -> None:  # type: ignore[no-untyped-def]
    assert find_bursts(clicks) == expected


def test_lists_and_thresholds_are_configurable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    agents, networks = tmp_path / "a.txt", tmp_path / "n.txt"
    agents.write_text("acme-linkcheck\n", encoding="utf-8")
    networks.write_text("scanner_network 192.0.2.0/24\napple_mpp 2001:db8::/32\n", encoding="utf-8")
    c = Classifier.from_files(
        agents, networks, min_click_seconds=2, uncertain_click_seconds=10, burst_links=2, burst_seconds=0.5
    )
    assert verdict(user_agent="ACME-LinkCheck/2", classifier=c).reason == "scanner_user_agent"
    assert verdict(user_agent="python-requests/2", classifier=c).reason is None  # the shipped list is replaced
    assert verdict(ip="192.0.2.9", classifier=c).reason == "scanner_network"
    assert verdict(kind="open", ip="2001:db8::1", classifier=c).reason == "apple_mpp"
    assert verdict(seconds_since_sent=3, classifier=c).doubt == "quick_click"
    assert verdict(seconds_since_sent=11, classifier=c).doubt is None
    assert c.find_bursts([(0.0, "a"), (0.4, "b")]) == {0, 1}
    assert c.find_bursts([(0.0, "a"), (0.6, "b")]) == set()


# --- one function for the pixel, the redirect and the webhook -----------------------------------------


@pytest.mark.parametrize(
    ("agent", "ip", "reason"),
    [
        (BROWSER, "203.0.113.77", None),
        ("python-requests/2.31", "203.0.113.77", "scanner_user_agent"),
        ("Mozilla/5.0", "203.0.113.77", "apple_mpp"),
        (BROWSER, "17.1.2.3", "apple_mpp"),
        (BROWSER, "64.235.150.9", "scanner_network"),
        ("", "203.0.113.77", "no_user_agent"),
    ],
)
def test_pixel_and_webhook_opens_agree(engine, agent, ip, reason) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    with session_scope(engine) as s:
        pixel = record_open(s, w.d_ada, RequestInfo(ip, agent, "GET", "en"))
        ingest_events(
            s,
            [
                {
                    "event": "open",
                    "sg_event_id": "o1",
                    "delivery_id": str(w.d_ada),
                    "useragent": agent,
                    "ip": ip,
                    "timestamp": int(time.time()),
                }
            ],
        )
    assert pixel.reason == reason
    with session_scope(engine) as s:
        rows = s.execute(select(Event.source, Event.is_machine, Event.machine_reason).order_by(Event.id)).all()
    assert rows == [("tracking", reason is not None, reason), ("sendgrid", reason is not None, reason)]


def test_redirect_and_webhook_clicks_agree_on_timing(engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    with session_scope(engine) as s:
        sent = s.get(Delivery, w.d_ada).sent_at
        fast = record_click(s, w.d_ada, 1, HUMAN, now=sent + timedelta(seconds=3))
        ingest_events(
            s,
            [
                {
                    "event": "click",
                    "sg_event_id": "c1",
                    "delivery_id": str(w.d_ada),
                    "useragent": BROWSER,
                    "url": "https://x.test/c/t/1",
                    "timestamp": int(sent.timestamp()) + 3,
                }
            ],
            now=sent + timedelta(minutes=1),
        )
    assert fast.reason == "too_fast_after_delivery"
    with session_scope(engine) as s:
        assert s.scalars(select(Event.machine_reason).order_by(Event.id)).all() == ["too_fast_after_delivery"] * 2


# --- bursts through the redirect (store) ------------------------------------------------------------


def test_redirect_burst_marks_every_click_and_takes_back_the_lead(engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    with session_scope(engine) as s:
        s.add(CampaignLink(campaign_id=w.campaign_id, position=4, url="https://example.test/4", kind="web"))
    t = None
    with session_scope(engine) as s:
        t = s.get(Delivery, w.d_ada).sent_at + timedelta(hours=3)
        first = record_click(s, w.d_ada, 2, HUMAN, now=t)  # the CTA, first: looks like a person
        assert first.lead_id is not None and not first.is_machine
    with session_scope(engine) as s:
        second = record_click(s, w.d_ada, 1, HUMAN, now=t + timedelta(milliseconds=300))
        assert not second.is_machine  # two links: still possible for a person
    with session_scope(engine) as s:
        third = record_click(s, w.d_ada, 4, HUMAN, now=t + timedelta(milliseconds=600))
    assert (third.is_machine, third.reason) == (True, "burst_clicks")
    with session_scope(engine) as s:
        clicks = s.execute(
            select(Event.is_machine, Event.machine_reason).where(Event.type == "click").order_by(Event.id)
        ).all()
        assert clicks == [(True, "burst_clicks")] * 3
        assert s.scalar(select(func.count()).select_from(Lead)) == 0  # the scanner's lead is gone
        assert s.execute(select(Event.is_machine, Event.machine_reason).where(Event.type == "lead")).all() == [
            (True, "burst_clicks")
        ]
        # Bob's clicks, and Ada's a second later, are not part of it
        later = record_click(s, w.d_ada, 1, HUMAN, now=t + timedelta(seconds=2))
        bob = record_click(s, w.d_bob, 1, HUMAN, now=t + timedelta(milliseconds=700))
    assert not later.is_machine and not bob.is_machine


def test_burst_takes_back_the_click_but_not_a_signup_lead(engine) -> None:  # type: ignore[no-untyped-def]
    """A reader who asked for a consultation at signup keeps their lead when a scanner's burst
    later takes back the CTA click that warmed it."""
    from newsletter.db.models import Subscriber
    from newsletter.leads import create_signup_lead

    w = build_world(engine)
    with session_scope(engine) as s:
        s.add(CampaignLink(campaign_id=w.campaign_id, position=4, url="https://example.test/4", kind="web"))
        email = s.get(Subscriber, s.get(Delivery, w.d_ada).subscriber_id).email
        create_signup_lead(s, email, by="test")
        t = s.get(Delivery, w.d_ada).sent_at + timedelta(hours=3)
    for position, ms in ((2, 0), (1, 300), (4, 600)):  # the CTA first, then a burst over the rest
        with session_scope(engine) as s:
            record_click(s, w.d_ada, position, HUMAN, now=t + timedelta(milliseconds=ms))
    with session_scope(engine) as s:
        lead = s.scalars(select(Lead)).one()
        assert (lead.source, lead.cta_clicks) == ("signup", 0)


def test_reason_vocabulary_is_documented() -> None:
    import importlib

    module = importlib.import_module("newsletter.tracking.classify")

    for name in (*REASONS, *DOUBTS):
        assert f"\n{name} " in module.__doc__, name
    assert json.dumps(REASONS) and json.dumps(DOUBTS)
