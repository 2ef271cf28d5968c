"""Privacy: addresses truncated, hashed or dropped; user agents kept; old event details pruned
while every count stays; the room's settings. Store tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
import warnings
from datetime import timedelta

import pytest
from sqlalchemy import select

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from test_tracking import BROWSER, HUMAN, build_world

from cli_runs import run_newsletter
from newsletter.config import Settings, load_settings
from newsletter.db import session_scope
from newsletter.db.models import Delivery, Event, utcnow
from newsletter.errors import UserError
from newsletter.reports import campaign_report
from newsletter.tracking import (
    RequestInfo,
    TokenSigner,
    TrackingOptions,
    derive_ip_hash_key,
    hash_ip,
    ingest_events,
    options_from_settings,
    prune_event_details,
    record_click,
    record_open,
    store_ip,
    unsubscribe,
)
from newsletter.web import create_app

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


def test_options_from_settings(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # the signing key file, if one were made, lands here
    assert options_from_settings(Settings()) == TrackingOptions()
    o = options_from_settings(
        load_settings(
            {
                "NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": " abc ",
                "NEWSLETTER_WEBHOOK_ALLOW_INSECURE": "yes",
                "NEWSLETTER_SOFT_BOUNCE_LIMIT": "5",
                "NEWSLETTER_IP_STORAGE": "HASH",
                "NEWSLETTER_EVENT_RETENTION_DAYS": "30",
                "NEWSLETTER_WEBHOOK_MAX_BYTES": "1048576",
                "NEWSLETTER_WEBHOOK_TOLERANCE_SECONDS": "120",
                "NEWSLETTER_CTA_CONFIRM_MIN_SECONDS": "2.5",
                "NEWSLETTER_CTA_CONFIRM_MAX_AGE_DAYS": "3",
                "NEWSLETTER_SECRET_KEY": "s",
            },
            workdir=tmp_path,
        )
    )
    assert (
        o.webhook_public_key,
        o.webhook_allow_insecure,
        o.soft_bounce_limit,
        o.ip_storage,
        o.retention_days,
        o.webhook_max_bytes,
        o.webhook_tolerance_seconds,
        o.cta_confirm_min_seconds,
        o.cta_confirm_max_age_days,
    ) == ("abc", True, 5, "hash", 30, 1048576, 120.0, 2.5, 3.0)
    assert o.ip_hash_key == derive_ip_hash_key("s") and "abc" not in repr(o)
    for variable, value in (
        ("NEWSLETTER_IP_STORAGE", "full"),
        ("NEWSLETTER_SOFT_BOUNCE_LIMIT", "0"),
        ("NEWSLETTER_WEBHOOK_MAX_BYTES", "10"),
        ("NEWSLETTER_WEBHOOK_TOLERANCE_SECONDS", "-1"),
        ("NEWSLETTER_EVENT_RETENTION_DAYS", "-3"),
        ("NEWSLETTER_CTA_CONFIRM_MAX_AGE_DAYS", "0"),
    ):
        with pytest.raises(UserError) as raised:
            options_from_settings(load_settings({variable: value}, workdir=tmp_path))
        assert raised.value.where == variable
    with pytest.raises(UserError, match="NEWSLETTER_SOFT_BOUNCE_LIMIT"):  # not a number: config says so
        load_settings({"NEWSLETTER_SOFT_BOUNCE_LIMIT": "three"}, workdir=tmp_path)
    assert not (tmp_path / ".newsletter-secret").exists()  # no key made unless hashing needs one


def test_a_dotenv_webhook_key_is_honoured(tmp_path, db_url, engine) -> None:  # type: ignore[no-untyped-def]
    """The key in ``.env`` (not the process environment) turns the signed webhook on."""
    from test_webhook import KEYS, sg

    w = build_world(engine)
    (tmp_path / ".env").write_text(
        f"NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY={KEYS.public_b64}\n"
        f"NEWSLETTER_DATABASE_URL={db_url}\nNEWSLETTER_SECRET_KEY=dotenv-test\n"
    )
    settings = load_settings({}, workdir=tmp_path)
    assert settings.webhook_public_key == KEYS.public_b64
    client = TestClient(create_app(settings, engine))
    body = json.dumps([sg("delivered", 1, w.d_ada)]).encode()
    assert client.post("/webhooks/sendgrid", content=body, headers=KEYS.headers(body)).json()["stored"] == 1
    assert (
        client.post("/webhooks/sendgrid", content=body, headers={"content-type": "application/json"}).status_code == 401
    )  # signed means signed: no headers, nothing stored
    elsewhere = load_settings({"NEWSLETTER_SECRET_KEY": "dotenv-test"}, workdir=tmp_path / "elsewhere")
    without = TestClient(create_app(elsewhere, engine))  # no .env there: no key, the webhook refuses
    assert without.post("/webhooks/sendgrid", content=body, headers=KEYS.headers(body)).status_code == 503


def test_a_bad_ip_storage_is_one_line_naming_the_variable(tmp_path, db_url) -> None:  # type: ignore[no-untyped-def]
    env_extra = {
        "NEWSLETTER_DATABASE_URL": db_url,
        "NEWSLETTER_SECRET_KEY": "cli-test",
        "NEWSLETTER_IP_STORAGE": "everything",
    }
    for args in (["events", "prune"], ["events", "prune", "--days", "30"]):
        result = run_newsletter(args, tmp_path, env_extra)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "NEWSLETTER_IP_STORAGE" in lines[0] and "everything" in lines[0]
    settings = load_settings({"NEWSLETTER_IP_STORAGE": "everything", "NEWSLETTER_SECRET_KEY": "k"}, workdir=tmp_path)
    with pytest.raises(UserError, match="NEWSLETTER_IP_STORAGE"):
        create_app(settings)  # the web app refuses to start the same way (newsletter serve)


def test_every_path_stores_the_address_as_configured(engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    hashed = TrackingOptions(ip_storage="hash", ip_hash_key=KEY)
    nothing = TrackingOptions(ip_storage="none")
    with session_scope(engine) as s:
        record_open(s, w.d_ada, HUMAN, options=hashed)
        record_click(s, w.d_ada, 1, HUMAN, options=hashed)
        record_open(s, w.d_bob, HUMAN, options=nothing)
        unsubscribe(s, w.d_bob, source="link", request=HUMAN, options=hashed)
        ingest_events(
            s,
            [
                {
                    "event": "open",
                    "sg_event_id": "x",
                    "delivery_id": str(w.d_ada),
                    "ip": "203.0.113.77",
                    "useragent": BROWSER,
                    "timestamp": int(time.time()),
                }
            ],
            options=hashed,
        )
    with session_scope(engine) as s:
        rows = s.execute(select(Event.type, Event.ip_prefix, Event.user_agent).order_by(Event.id)).all()
    expected = hash_ip("203.0.113.77", KEY)
    assert rows == [
        ("open", expected, BROWSER),
        ("click", expected, BROWSER),
        ("open", None, BROWSER),
        ("unsubscribe", expected, BROWSER),
        ("open", expected, BROWSER),
    ]


def test_the_app_hashes_when_told(settings, engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    settings = settings.with_overrides(ip_storage="hash")  # as NEWSLETTER_IP_STORAGE=hash would
    client = TestClient(create_app(settings, engine), client=("203.0.113.77", 5000), headers={"user-agent": BROWSER})
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
        ingest_events(
            s,
            [
                {
                    "event": "delivered",
                    "sg_event_id": "d1",
                    "delivery_id": str(w.d_ada),
                    "timestamp": int(old.timestamp()),
                },
                {
                    "event": "bounce",
                    "type": "blocked",
                    "sg_event_id": "b1",
                    "delivery_id": str(w.d_bob),
                    "timestamp": int(old.timestamp()),
                    "reason": "550 mailbox <bob@example.com> full",
                },
            ],
            now=now,
        )
    with session_scope(engine) as s:
        before = campaign_report(s, w.campaign_id)
        pruned = prune_event_details(s, 180, now=now, chunk=3)  # small chunks: the loop is exercised
    with session_scope(engine) as s:
        after = campaign_report(s, w.campaign_id)
        rows = s.execute(
            select(
                Event.occurred_at,
                Event.ip_prefix,
                Event.user_agent,
                Event.data,
                Event.is_machine,
                Event.machine_reason,
                Event.link_id,
            )
        ).all()
        again = prune_event_details(s, 180, now=now)
    assert pruned == 8 and again == 0  # 5 tracking events + 1 lead event + 2 webhook events
    assert before == after
    assert (
        after["leads"],
        after["cta_leads"],
        after["opens"]["unique_machine"],
        after["clicks"]["unique_machine"],
    ) == (1, 1, 1, 1)
    for occurred_at, ip, agent, data, *_ in rows:
        if occurred_at < now - timedelta(days=180):
            assert (ip, agent, data) == (None, None, None)
        else:
            assert agent is not None or data is not None
    assert "bob@example.com" not in str([r.data for r in rows if r.data])
    with pytest.raises(ValueError):
        with session_scope(engine) as s:
            prune_event_details(s, -1)
