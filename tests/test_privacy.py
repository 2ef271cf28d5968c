"""Privacy: addresses truncated, hashed or dropped; user agents kept; old event details pruned
while every count stays; the room's settings. Store tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import warnings
from datetime import timedelta

import pytest
from sqlalchemy import select

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from newsletter.db import session_scope
from newsletter.db.models import Delivery, Event, utcnow
from newsletter.reports import campaign_report
from newsletter.tracking import (
    RequestInfo,
    TokenSigner,
    TrackingOptions,
    derive_ip_hash_key,
    hash_ip,
    ingest_events,
    options_from_env,
    prune_event_details,
    record_click,
    record_open,
    store_ip,
    unsubscribe,
)
from newsletter.web import create_app
from test_tracking import BROWSER, HUMAN, build_world

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
KEY = derive_ip_hash_key("test-secret")


def test_store_ip_modes() -> None:
    assert store_ip("203.0.113.77") == "203.0.113.0/24"
    assert store_ip("203.0.113.77", "none") is None
    hashed = store_ip("203.0.113.77", "hash", KEY)
    assert hashed.startswith("h:") and len(hashed) == 34 and "203" not in hashed
    assert hashed == hash_ip("::ffff:203.0.113.77", KEY)  # one address, one hash, however written
    assert hashed != hash_ip("203.0.113.78", KEY)  # per address, not per network
    assert hashed != hash_ip("203.0.113.77", derive_ip_hash_key("another secret"))
    assert store_ip("not an ip", "hash", KEY) is None and store_ip(None, "hash", KEY) is None
    with pytest.raises(ValueError):
        store_ip("203.0.113.77", "hash", None)
    with pytest.raises(ValueError):
        store_ip("203.0.113.77", "everything")
    assert derive_ip_hash_key("k") != b"k" and len(derive_ip_hash_key("k")) == 32


def test_options_from_env() -> None:
    assert options_from_env({}) == TrackingOptions()
    o = options_from_env({"NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": " abc ", "NEWSLETTER_WEBHOOK_ALLOW_INSECURE": "yes",
                          "NEWSLETTER_SOFT_BOUNCE_LIMIT": "5", "NEWSLETTER_IP_STORAGE": "HASH",
                          "NEWSLETTER_EVENT_RETENTION_DAYS": "30", "NEWSLETTER_WEBHOOK_MAX_BYTES": "1048576"},
                         signing_key="s")
    assert (o.webhook_public_key, o.webhook_allow_insecure, o.soft_bounce_limit, o.ip_storage, o.retention_days,
            o.webhook_max_bytes) == ("abc", True, 5, "hash", 30, 1048576)
    assert o.ip_hash_key == derive_ip_hash_key("s") and "abc" not in repr(o)
    with pytest.raises(ValueError, match="NEWSLETTER_SOFT_BOUNCE_LIMIT"):
        options_from_env({"NEWSLETTER_SOFT_BOUNCE_LIMIT": "three"})
    with pytest.raises(ValueError, match="NEWSLETTER_IP_STORAGE"):
        options_from_env({"NEWSLETTER_IP_STORAGE": "full"})
    with pytest.raises(ValueError, match="key"):
        options_from_env({"NEWSLETTER_IP_STORAGE": "hash"})  # no signing key to derive from


def test_every_path_stores_the_address_as_configured(engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    hashed = TrackingOptions(ip_storage="hash", ip_hash_key=KEY)
    nothing = TrackingOptions(ip_storage="none")
    with session_scope(engine) as s:
        record_open(s, w.d_ada, HUMAN, options=hashed)
        record_click(s, w.d_ada, 1, HUMAN, options=hashed)
        record_open(s, w.d_bob, HUMAN, options=nothing)
        unsubscribe(s, w.d_bob, source="link", request=HUMAN, options=hashed)
        ingest_events(s, [{"event": "open", "sg_event_id": "x", "delivery_id": str(w.d_ada), "ip": "203.0.113.77",
                           "useragent": BROWSER, "timestamp": int(time.time())}], options=hashed)
    with session_scope(engine) as s:
        rows = s.execute(select(Event.type, Event.ip_prefix, Event.user_agent).order_by(Event.id)).all()
    expected = hash_ip("203.0.113.77", KEY)
    assert rows == [("open", expected, BROWSER), ("click", expected, BROWSER), ("open", None, BROWSER),
                    ("unsubscribe", expected, BROWSER), ("open", expected, BROWSER)]


def test_the_app_hashes_when_told(settings, engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    tracking = options_from_env({"NEWSLETTER_IP_STORAGE": "hash"}, signing_key=settings.signing_key())
    client = TestClient(create_app(settings, engine, tracking=tracking), client=("203.0.113.77", 5000),
                        headers={"user-agent": BROWSER})
    assert client.get(f"/o/{TokenSigner(settings.signing_key()).sign(w.d_ada)}.gif").status_code == 200
    with session_scope(engine) as s:
        [(prefix, agent)] = s.execute(select(Event.ip_prefix, Event.user_agent)).all()
    assert prefix == hash_ip("203.0.113.77", derive_ip_hash_key(settings.signing_key())) and agent == BROWSER


def test_prune_keeps_every_count(engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    now = utcnow()
    old, recent = now - timedelta(days=400), now - timedelta(days=3)
    with session_scope(engine) as s:
        for d in (w.d_ada, w.d_bob):
            s.get(Delivery, d).sent_at = now - timedelta(days=500)
    with session_scope(engine) as s:
        for when in (old, recent):
            record_open(s, w.d_ada, HUMAN, now=when)
            record_open(s, w.d_bob, RequestInfo("17.1.2.3", "Mozilla/5.0"), now=when)
            record_click(s, w.d_ada, 1, HUMAN, now=when)
            record_click(s, w.d_ada, 2, HUMAN, now=when)  # the CTA: a lead and its event
            record_click(s, w.d_bob, 1, RequestInfo("1.2.3.4", "curl/8"), now=when)
        ingest_events(s, [{"event": "delivered", "sg_event_id": "d1", "delivery_id": str(w.d_ada),
                           "timestamp": int(old.timestamp())},
                          {"event": "bounce", "type": "blocked", "sg_event_id": "b1", "delivery_id": str(w.d_bob),
                           "timestamp": int(old.timestamp()), "reason": "550 mailbox <bob@example.com> full"}],
                      now=now)
    with session_scope(engine) as s:
        before = campaign_report(s, w.campaign_id)
        pruned = prune_event_details(s, 180, now=now, chunk=3)  # small chunks: the loop is exercised
    with session_scope(engine) as s:
        after = campaign_report(s, w.campaign_id)
        rows = s.execute(select(Event.occurred_at, Event.ip_prefix, Event.user_agent, Event.data,
                                Event.is_machine, Event.machine_reason, Event.link_id)).all()
        again = prune_event_details(s, 180, now=now)
    assert pruned == 8 and again == 0  # 5 tracking events + 1 lead event + 2 webhook events
    assert before == after
    assert (after["leads"], after["cta_leads"], after["opens"]["unique_machine"], after["clicks"]["unique_machine"]) == (
        1, 1, 1, 1)
    for occurred_at, ip, agent, data, *_ in rows:
        if occurred_at < now - timedelta(days=180):
            assert (ip, agent, data) == (None, None, None)
        else:
            assert agent is not None or data is not None
    assert "bob@example.com" not in str([r.data for r in rows if r.data])
    with pytest.raises(ValueError):
        with session_scope(engine) as s:
            prune_event_details(s, -1)
