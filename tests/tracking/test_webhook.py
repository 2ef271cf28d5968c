"""The signed SendGrid Event Webhook, end to end through the app: signatures (SendGrid's own test
vectors and a key pair made here), freshness, refusals that store nothing, every event type,
each sg_event_id once, bulk writes, suppression followed by a real send that leaves the address
out, and the report's provider figures. Every store test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, func, select

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from factories import add_article, add_campaign, add_subscribers
from newsletter.campaigns import create_campaign, drain, import_article, send_campaign, start_sending
from newsletter.config import Settings
from newsletter.db import models, session_scope
from newsletter.db.models import Delivery, Event, Subscriber, Suppression, utcnow
from newsletter.reports import campaign_report
from newsletter.tracking import (
    BadSignature,
    InvalidPublicKey,
    MalformedBatch,
    MissingSignature,
    StaleTimestamp,
    TrackingOptions,
    WebhookVerifier,
    parse_batch,
)
from newsletter.web import create_app
from repo_paths import REPO_DIR

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

VECTORS = REPO_DIR.parent / "shared" / "sendgrid" / "event_webhook_vectors.json"
SIG = "X-Twilio-Email-Event-Webhook-Signature"
TS = "X-Twilio-Email-Event-Webhook-Timestamp"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


# --- keys and signing ------------------------------------------------------------------------


class Keys:
    """A P-256 key pair made for the test run, signing exactly as SendGrid does."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self._private = ec.generate_private_key(ec.SECP256R1())
        der = self._private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_b64 = base64.b64encode(der).decode()

    def sign(self, body: bytes, timestamp: str) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return base64.b64encode(self._private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()

    def headers(self, body: bytes, timestamp: float | None = None) -> dict[str, str]:
        ts = str(int(time.time() if timestamp is None else timestamp))
        return {SIG: self.sign(body, ts), TS: ts, "content-type": "application/json"}


KEYS = Keys()


def vectors() -> dict:
    if not VECTORS.exists():
        pytest.skip(
            f"SendGrid's webhook test vectors are not beside the checkout ({VECTORS}); "
            "the tests with a key pair made here still cover the behaviour"
        )
    return json.loads(VECTORS.read_text())


class Clock:
    def __init__(self, t: float | None = None) -> None:
        self.t = t

    def __call__(self) -> float:
        return time.time() if self.t is None else self.t


# --- the world -------------------------------------------------------------------------------


@dataclass
class World:
    campaign_id: int
    subscribers: list[int]
    deliveries: list[int]  # sent an hour ago, message id "MSG1" for all (one SendGrid request)
    links: dict[int, int]  # position -> link id


def build_world(engine: Engine, n: int = 3) -> World:
    with session_scope(engine) as s:
        article = add_article(s)
        c = add_campaign(s, article.id, "April", subject="Hi")
        links = [
            models.CampaignLink(campaign_id=c.id, position=p, url=f"https://example.test/{p}", kind=k)
            for p, k in ((1, "article"), (2, "cta"), (3, "read_more"), (4, "web"), (5, "honeypot"))
        ]
        s.add_all(links)
        subs = [Subscriber(email=f"reader{i}@example.com", first_name=f"R{i}") for i in range(n)]
        s.add_all(subs)
        s.flush()
        sent = utcnow() - timedelta(hours=1)
        ds = [
            Delivery(campaign_id=c.id, subscriber_id=x.id, status="sent", sent_at=sent, message_id="MSG1") for x in subs
        ]
        s.add_all(ds)
        s.add(
            models.SendLog(campaign_id=c.id, message_id="MSG1", recipients=n, recorded_at=sent)
        )  # as the dispatcher logs it
        s.flush()
        return World(c.id, [x.id for x in subs], [d.id for d in ds], {link.position: link.id for link in links})


def options(**kw) -> TrackingOptions:  # type: ignore[no-untyped-def]
    base = dict(webhook_public_key=KEYS.public_b64)
    base.update(kw)
    return TrackingOptions(**base)  # type: ignore[arg-type]


@pytest.fixture
def app_client(settings: Settings, engine: Engine) -> TestClient:
    return TestClient(create_app(settings, engine, tracking=options()), raise_server_exceptions=False)


def post(
    client: TestClient,
    events: list | dict | bytes,
    *,
    timestamp: float | None = None,
    headers: dict[str, str] | None = None,
):  # type: ignore[no-untyped-def]
    body = events if isinstance(events, bytes) else json.dumps(events).encode()
    return client.post("/webhooks/sendgrid", content=body, headers=headers or KEYS.headers(body, timestamp))


def sg(event: str, n: int, delivery_id: int | None = None, **extra) -> dict:  # type: ignore[no-untyped-def]
    item = {
        "email": "reader0@example.com",
        "event": event,
        "sg_event_id": f"evt-{event}-{n}",
        "sg_message_id": "MSG1.filterdrecv-1-2-3",
        "timestamp": int(time.time()) - 60,
    }
    if delivery_id is not None:
        item.update(delivery_id=str(delivery_id), campaign_id="1")
    item.update(extra)
    return item


def stored(engine: Engine) -> list[Event]:
    with session_scope(engine) as s:
        return list(s.scalars(select(Event).order_by(Event.id)))


def count(engine: Engine, model) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


# --- signatures (no store) -------------------------------------------------------------------


def test_sendgrid_vectors_valid_and_each_negative() -> None:
    v = vectors()
    payload, ts, signature = v["payload"].encode(), v["timestamp"], v["signature"]
    verifier = WebhookVerifier(v["public_key"])
    verifier.verify(signature, ts, payload, now=int(ts))  # valid: returns quietly
    neg = v["negative"]
    with pytest.raises(BadSignature):
        WebhookVerifier(neg["wrong_public_key"]).verify(signature, ts, payload, now=int(ts))
    with pytest.raises(BadSignature):
        verifier.verify(neg["wrong_signature"], ts, payload, now=int(ts))
    with pytest.raises(BadSignature):
        verifier.verify(signature, ts, neg["wrong_payload"].encode(), now=int(ts))
    with pytest.raises(BadSignature):
        verifier.verify(signature, neg["wrong_timestamp"], payload, now=int(ts))
    with pytest.raises(StaleTimestamp):  # genuine, but signed in 2020: a replay today
        verifier.verify(signature, ts, payload, now=time.time())


@pytest.mark.parametrize(
    ("signature", "timestamp", "error"),
    [
        (None, "1700000000", MissingSignature),
        ("abc", None, MissingSignature),
        ("", "1700000000", MissingSignature),
        ("not base64 !!!", "1700000000", BadSignature),
        (base64.b64encode(b"\x30\x00").decode(), "1700000000", BadSignature),  # base64, but not a DER signature
        ("A" * 5000, "1700000000", BadSignature),
        ("MEUCIQ==", "17000000001700000000170", BadSignature),
        ("MEUCIQ==", "tomorrow", BadSignature),
        ("MEUCIQ==", "☃", BadSignature),
    ],
)
def test_malformed_signatures_are_refused_not_crashes(signature, timestamp, error) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error):
        WebhookVerifier(KEYS.public_b64).verify(signature, timestamp, b"[]", now=1700000000)


def test_own_key_pair_and_freshness() -> None:
    verifier = WebhookVerifier(KEYS.public_b64, tolerance_seconds=600)
    body, now = b'[{"event":"delivered"}]', 1_700_000_000
    for skew in (0, -599, 599):
        ts = str(now + skew)
        verifier.verify(KEYS.sign(body, ts), ts, body, now=now)
    for skew in (-601, 601, -86400 * 365):
        ts = str(now + skew)
        with pytest.raises(StaleTimestamp):
            verifier.verify(KEYS.sign(body, ts), ts, body, now=now)
    with pytest.raises(BadSignature):  # the body changed by one byte
        verifier.verify(KEYS.sign(body, str(now)), str(now), body.replace(b"delivered", b"Delivered"), now=now)
    with pytest.raises(BadSignature):  # the signature of another timestamp
        verifier.verify(KEYS.sign(body, str(now)), str(now + 1), body, now=now)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "not base64!",
        base64.b64encode(b"garbage").decode(),
        # an RSA-sized blob of random bytes, and a P-384 key
        base64.b64encode(b"\x00" * 300).decode(),
    ],
)
def test_bad_public_keys_are_named(key) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidPublicKey):
        WebhookVerifier(key)


def test_p384_key_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    der = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InvalidPublicKey, match="P-256"):
        WebhookVerifier(base64.b64encode(der).decode())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not valid JSON"),
        (b"[{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"event": "delivered"}', "array"),
        (b'"x"', "array"),
        (b"[1, 2]", "event object"),
        (b'[{"event": "open"}, []]', "event object"),
    ],
)
def test_parse_batch_refuses_whole(body, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MalformedBatch, match=message):
        parse_batch(body)
    assert parse_batch(b"[]") == []


# --- the route: refusals store nothing ---------------------------------------------------------


def test_vectors_through_the_app(settings, engine) -> None:  # type: ignore[no-untyped-def]
    v = vectors()
    headers = {SIG: v["signature"], TS: v["timestamp"], "content-type": "application/json"}
    now_client = TestClient(create_app(settings, engine, tracking=TrackingOptions(webhook_public_key=v["public_key"])))
    stale = now_client.post("/webhooks/sendgrid", content=v["payload"].encode(), headers=headers)
    assert stale.status_code == 403 and "timestamp" in stale.json()["error"]
    for name, value in v["negative"].items():
        h, body, key = dict(headers), v["payload"].encode(), v["public_key"]
        if name == "wrong_public_key":
            key = value
        elif name == "wrong_signature":
            h[SIG] = value
        elif name == "wrong_payload":
            body = value.encode()
        elif name == "wrong_timestamp":
            h[TS] = value
        app = create_app(
            settings, engine, tracking=TrackingOptions(webhook_public_key=key, clock=Clock(int(v["timestamp"])))
        )
        assert TestClient(app).post("/webhooks/sendgrid", content=body, headers=h).status_code == 403, name
    assert stored(engine) == [] and count(engine, Suppression) == 0
    # At the moment it was signed, the genuine post is accepted: an unknown message, stored
    # without a delivery, and the address that bounced is suppressed.
    then = TestClient(
        create_app(
            settings,
            engine,
            tracking=TrackingOptions(webhook_public_key=v["public_key"], clock=Clock(int(v["timestamp"]) + 5)),
        )
    )
    answer = then.post("/webhooks/sendgrid", content=v["payload"].encode(), headers=headers)
    assert answer.status_code == 200
    assert answer.json() == {
        "received": 1,
        "stored": 1,
        "duplicates": 0,
        "unknown_message": 1,
        "machine": 0,
        "suppressed": 1,
    }
    [e] = stored(engine)
    assert (e.type, e.delivery_id, e.source, e.event_key) == (
        "dropped",
        None,
        "sendgrid",
        "sg:ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
    )
    assert "email" not in e.data and e.data["reason"] == "Bounced Address"
    with session_scope(engine) as s:
        assert [(x.email, x.reason, x.source) for x in s.scalars(select(Suppression))] == [
            ("hello@world.com", "bounced", "sendgrid")
        ]


def test_signature_refusals_store_nothing(app_client, engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    body = json.dumps([sg("bounce", 1, w.deliveries[0], type="bounce")]).encode()
    good = KEYS.headers(body)
    cases = {
        "no headers": ({"content-type": "application/json"}, 401),
        "no signature": ({TS: good[TS]}, 401),
        "no timestamp": ({SIG: good[SIG]}, 401),
        "garbage signature": ({SIG: "%%%not-base64%%%", TS: good[TS]}, 403),
        "truncated signature": ({SIG: good[SIG][:20], TS: good[TS]}, 403),
        "other body's signature": ({SIG: KEYS.sign(b"[]", good[TS]), TS: good[TS]}, 403),
        "another key": ({SIG: Keys().sign(body, good[TS]), TS: good[TS]}, 403),
        "timestamp edited": ({SIG: good[SIG], TS: str(int(good[TS]) + 1)}, 403),
        "stale (11 minutes old)": (KEYS.headers(body, time.time() - 660), 403),
        "from the future (11 minutes)": (KEYS.headers(body, time.time() + 660), 403),
        "a day-old capture": (KEYS.headers(body, time.time() - 86400), 403),
    }
    for name, (headers, status) in cases.items():
        response = app_client.post("/webhooks/sendgrid", content=body, headers=headers)
        assert response.status_code == status, name
        assert "error" in response.json(), name
    assert stored(engine) == [] and count(engine, Suppression) == 0
    with session_scope(engine) as s:
        assert s.get(Subscriber, w.subscribers[0]).status == "active"


def test_replayed_post_within_the_window_counts_once(app_client, engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    batch = [sg("delivered", i, d) for i, d in enumerate(w.deliveries)] + [
        sg("open", 9, w.deliveries[0], useragent=BROWSER)
    ]
    body = json.dumps(batch).encode()
    headers = KEYS.headers(body)
    first = app_client.post("/webhooks/sendgrid", content=body, headers=headers)
    replay = app_client.post("/webhooks/sendgrid", content=body, headers=headers)  # captured and replayed
    retry = post(app_client, batch)  # SendGrid's own retry: same events, new signature
    assert first.json()["stored"] == 4
    assert replay.status_code == retry.status_code == 200
    assert replay.json()["stored"] == retry.json()["stored"] == 0 and retry.json()["duplicates"] == 4
    assert len(stored(engine)) == 4
    # the same event twice inside one post counts once too
    assert post(app_client, [sg("processed", 1, w.deliveries[0])] * 3).json() == {
        "received": 3,
        "stored": 1,
        "duplicates": 2,
        "unknown_message": 0,
        "machine": 0,
        "suppressed": 0,
    }
    with session_scope(engine) as s:
        assert campaign_report(s, w.campaign_id)["delivered"] == 3


def test_a_large_post_partly_stored_before_counts_and_suppresses_only_the_new(app_client, engine) -> None:  # type: ignore[no-untyped-def]
    """2,500 events (two statements' worth on SQLite), 600 of them posted before: exactly the
    1,900 new ones are counted, and only a new bounce suppresses."""
    w = build_world(engine)
    d0, d1, d2 = w.deliveries
    events = [sg("delivered", i, w.deliveries[i % 3]) for i in range(2499)]
    events.append(sg("bounce", 1, d2, type="bounce", reason="550 unknown", email="reader2@example.com"))
    early = events[:300] + events[2200:]  # the bounce among them
    first = post(app_client, early).json()
    assert (first["stored"], first["suppressed"]) == (600, 1)
    second = post(app_client, events).json()
    assert (second["received"], second["stored"], second["duplicates"], second["suppressed"]) == (2500, 1900, 600, 0)
    assert count(engine, Event) == 2500 and count(engine, Suppression) == 1
    keys = {e.event_key for e in stored(engine)}
    assert keys == {"sg:" + e["sg_event_id"] for e in events}


def test_sqlite_checkpoints_after_the_answer_not_in_it(settings, engine) -> None:  # type: ignore[no-untyped-def]
    """SQLite: the webhook's commit leaves the WAL checkpoint to a background thread, and every
    connection keeps SQLite's own automatic checkpoint setting. PostgreSQL has no such thread."""
    w = build_world(engine)
    app = create_app(settings, engine, tracking=options())
    with TestClient(app) as client:  # the context runs the app's shutdown: the thread stops
        assert post(client, [sg("delivered", i, w.deliveries[0]) for i in range(50)]).json()["stored"] == 50
        checkpointer = app.state.newsletter.checkpointer
        if engine.dialect.name != "sqlite":
            assert checkpointer is None
            return
        deadline = time.monotonic() + 30
        while checkpointer.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.runs >= 1
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
            busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            assert busy == 0 and frames == copied
    assert checkpointer._thread is None and count(engine, Event) == 50


def test_sqlite_checkpoints_are_spaced_not_one_per_commit(engine) -> None:  # type: ignore[no-untyped-def]
    """Many small commits (the pixel's groups) in a burst are served by few checkpoints; one asked
    for after the burst still runs, and closing waits for nothing but the last checkpoint."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only: PostgreSQL needs no checkpoint thread")
    from newsletter.db.checkpoints import Checkpointer

    add_subscribers(engine, 1)
    checkpointer = Checkpointer(engine, min_interval=0.5)
    start = time.monotonic()
    for _ in range(40):
        with engine.connect() as conn, checkpointer.deferred(conn), conn.begin():
            conn.exec_driver_sql("UPDATE subscribers SET first_name = 'x'")
        time.sleep(0.01)
    burst = time.monotonic() - start
    deadline = time.monotonic() + 10
    while checkpointer.runs == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 1 <= checkpointer.runs <= int(burst / 0.5) + 2  # not forty
    time.sleep(0.6)
    before = checkpointer.runs
    with engine.connect() as conn, checkpointer.deferred(conn), conn.begin():
        conn.exec_driver_sql("UPDATE subscribers SET first_name = 'y'")
    started = time.monotonic()
    checkpointer.close()
    assert checkpointer.runs == before + 1 and time.monotonic() - started < 0.5
    with engine.connect() as conn:
        busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert busy == 0 and frames == copied


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[{not json", 400),
        (b"", 400),
        (b'{"event": "bounce", "email": "reader0@example.com"}', 400),
        (b'[{"event": "bounce"}, 7]', 400),
        (b"null", 400),
    ],
)
def test_malformed_bodies_are_400_and_store_nothing(app_client, engine, body, status) -> None:  # type: ignore[no-untyped-def]
    build_world(engine)
    response = post(app_client, body)
    assert response.status_code == status and "error" in response.json()
    assert stored(engine) == [] and count(engine, Suppression) == 0


def test_odd_but_valid_events_are_stored_not_a_server_error(app_client, engine) -> None:  # type: ignore[no-untyped-def]
    """Input PostgreSQL's text columns cannot hold (NUL) and digits Python reads but ``int`` does
    not are stored sensibly: a 500 would make SendGrid retry the post for a day."""
    w = build_world(engine)
    d0 = w.deliveries[0]
    batch = [
        sg("open", 1, d0, useragent="Mozilla/5.0\u0000 (X11)", ip="203.0.113.9"),
        {**sg("delivered", 2, d0), "event": "Delivered\u0000"},
        {**sg("processed", 3), "sg_event_id": "nul\u0000id"},
        {**sg("delivered", 4), "delivery_id": "\u00b2"},
        {**sg("delivered", 5), "delivery_id": "\uff11\uff12"},
        {**sg("open", 6, d0), "timestamp": 10**20},
        {**sg("open", 7, d0), "timestamp": True},
    ]
    body = json.dumps(batch).encode()
    answer = app_client.post("/webhooks/sendgrid", content=body, headers=KEYS.headers(body))
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == len(batch)
    rows = {e.event_key: e for e in stored(engine)}
    assert rows["sg:evt-open-1"].user_agent == "Mozilla/5.0 (X11)" and rows["sg:evt-delivered-2"].type == "delivered"
    assert "sg:nulid" in rows  # the NUL id: its NUL taken out as the body is parsed (see the NUL tests below)
    assert rows["sg:evt-delivered-4"].delivery_id == rows["sg:evt-delivered-5"].delivery_id == d0  # via the address
    assert rows["sg:evt-open-6"].occurred_at > utcnow() - timedelta(minutes=5)  # a far-future clock: now
    assert post(app_client, batch).json()["stored"] == 0  # and a retry counts once


def test_oversize_body_is_413_and_stores_nothing(settings, engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    client = TestClient(create_app(settings, engine, tracking=options(webhook_max_bytes=64 * 1024)))
    big = [sg("bounce", i, w.deliveries[0], type="bounce", pad="x" * 200) for i in range(400)]
    body = json.dumps(big).encode()
    assert len(body) > 64 * 1024
    assert post(client, body).status_code == 413
    # chunked, without a Content-Length: counted as it arrives
    chunks = iter([body[i : i + 8192] for i in range(0, len(body), 8192)])
    response = client.post("/webhooks/sendgrid", content=chunks, headers=KEYS.headers(body))
    assert response.status_code == 413
    assert stored(engine) == [] and count(engine, Suppression) == 0
    # the default cap (5 MB) takes a batch of 1,000 events
    batch = [sg("processed", i, w.deliveries[i % 3]) for i in range(1000)]
    assert post(TestClient(create_app(settings, engine, tracking=options())), batch).json()["stored"] == 1000


def test_without_a_key_the_webhook_refuses_and_says_so(settings, engine, caplog) -> None:  # type: ignore[no-untyped-def]
    build_world(engine)
    body = json.dumps([sg("delivered", 1)]).encode()
    with caplog.at_level("WARNING"):
        client = TestClient(create_app(settings, engine, tracking=TrackingOptions()))
    assert "NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY is not set" in caplog.text
    response = client.post("/webhooks/sendgrid", content=body, headers=KEYS.headers(body))
    assert response.status_code == 503 and "NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY" in response.json()["error"]
    assert stored(engine) == []
    caplog.clear()
    with caplog.at_level("WARNING"):
        insecure = TestClient(create_app(settings, engine, tracking=TrackingOptions(webhook_allow_insecure=True)))
    assert "UNSIGNED" in caplog.text
    assert insecure.post("/webhooks/sendgrid", content=body).status_code == 200
    assert len(stored(engine)) == 1
    caplog.clear()
    with caplog.at_level("ERROR"):
        broken = TestClient(
            create_app(settings, engine, tracking=TrackingOptions(webhook_public_key="bm9wZQ==")),
            raise_server_exceptions=False,
        )
    assert "not valid" in caplog.text
    assert broken.post("/webhooks/sendgrid", content=body, headers=KEYS.headers(body)).status_code == 503
    assert broken.get("/healthz").text == "ok"  # the rest of the app still runs


def test_get_is_not_allowed(app_client) -> None:  # type: ignore[no-untyped-def]
    assert app_client.get("/webhooks/sendgrid").status_code == 405


# --- every event type --------------------------------------------------------------------------


def test_every_event_type_maps_to_its_ledger_row(app_client, engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    d0, d1, d2 = w.deliveries
    ts = int(time.time()) - 120
    batch = [
        sg("processed", 1, d0),
        sg("delivered", 1, d0),
        sg("deferred", 1, d1, response="450 try later", attempt="1"),
        sg("deferred", 2, d1, attempt="2"),
        sg("bounce", 1, d2, type="blocked", reason="550 blocked", email="reader2@example.com"),
        sg("blocked", 1, d2, email="reader2@example.com"),
        sg("open", 1, d0, useragent=BROWSER, ip="203.0.113.77", sg_machine_open=False),
        sg("open", 2, d0, useragent="Mozilla/5.0", ip="17.58.1.2", sg_machine_open=True),
        sg("click", 1, d0, url="https://news.example.test/c/tok/1", useragent=BROWSER, ip="198.51.100.9", timestamp=ts),
        sg("group_resubscribe", 1, d0, asm_group_id=7),
        sg("future_event_type", 1, d0, shiny={"nested": [1, 2]}),
        {
            "event": "delivered",
            "sg_event_id": "no-custom-args",
            "sg_message_id": "MSG1.filter0001-2",
            "email": "Reader1@Example.com",
            "timestamp": ts,
        },  # found through X-Message-Id + address
        {
            "event": "delivered",
            "sg_event_id": "nobody",
            "sg_message_id": "OTHER.f1",
            "email": "x@elsewhere.test",
            "timestamp": ts,
        },  # not ours
        sg("delivered", 99, 987654321, sg_message_id="ELSEWHERE.f1"),  # a delivery id we never had
        {
            "event": "processed",
            "email": "reader0@example.com",
            "timestamp": ts,
            "delivery_id": str(d0),
        },  # no sg_event_id
        {"sg_event_id": "typeless", "delivery_id": str(d0)},
    ]
    answer = post(app_client, batch).json()
    assert answer["received"] == answer["stored"] == len(batch)
    assert answer["unknown_message"] == 2 and answer["machine"] == 1
    rows = {e.event_key: e for e in stored(engine)}
    assert {e.type for e in rows.values()} == {
        "processed",
        "delivered",
        "deferred",
        "blocked",
        "open",
        "click",
        "group_resubscribe",
        "future_event_type",
        "unknown",
    }
    assert rows["sg:evt-bounce-1"].type == "blocked" and rows["sg:evt-blocked-1"].type == "blocked"
    assert (
        rows["sg:evt-delivered-1"].delivery_id,
        rows["sg:evt-delivered-1"].subscriber_id,
        rows["sg:evt-delivered-1"].campaign_id,
    ) == (d0, w.subscribers[0], w.campaign_id)
    assert rows["sg:no-custom-args"].delivery_id == d1
    assert rows["sg:nobody"].delivery_id is None and rows["sg:nobody"].campaign_id is None
    assert rows["sg:evt-delivered-99"].delivery_id is None
    assert rows["sg:evt-future_event_type-1"].data["shiny"] == {"nested": [1, 2]}  # kept raw
    hashed = [k for k in rows if k.startswith("sg:h:")]
    assert len(hashed) == 1 and rows[hashed[0]].type == "processed"
    human, machine = rows["sg:evt-open-1"], rows["sg:evt-open-2"]
    assert (human.is_machine, human.ip_prefix, human.user_agent) == (False, "203.0.113.0/24", BROWSER)
    assert (machine.is_machine, machine.machine_reason) == (True, "sg_machine_open")
    click = rows["sg:evt-click-1"]
    assert (click.link_id, click.is_machine) == (w.links[1], False)
    for e in rows.values():  # the address, the full IP and the agent never sit in the raw data
        assert e.data is None or not {"email", "ip", "useragent"} & set(e.data)
    assert e.source == "sendgrid"
    # a retry of the whole batch, also the events without sg_event_id, stores nothing new
    assert post(app_client, batch).json()["stored"] == 0


def test_events_are_written_in_one_insert(app_client, engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    inserts: list[str] = []

    def watch(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        # SQLite: one multi-row INSERT; PostgreSQL: the rows are COPYed into a temporary table
        # (psycopg's own cursor), then one INSERT INTO events … SELECT moves them.
        if "INSERT INTO EVENTS" in statement.upper():
            inserts.append(statement)

    event.listen(engine, "before_cursor_execute", watch)
    try:
        batch = [
            sg(kind, i, w.deliveries[i % 3], useragent=BROWSER)
            for i in range(250)
            for kind in ("processed", "delivered", "open", "deferred")
        ]
        assert post(app_client, batch).json()["stored"] == 1000
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert len(inserts) == 1
    assert count(engine, Event) == 1000


def test_webhook_clicks_are_classified_like_the_redirect(app_client, engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    d0, d1, d2 = w.deliveries
    with session_scope(engine) as s:
        sent_at = s.get(Delivery, d0).sent_at
    t0 = int(sent_at.timestamp())
    url = "https://news.example.test/c/tok/{}".format
    batch = [
        sg("click", 1, d0, url=url(1), useragent=BROWSER, timestamp=t0 + 2),  # too fast
        # d1: three links within one second, an hour after sending: a scanner walking the links
        sg("click", 2, d1, url=url(1), useragent=BROWSER, timestamp=t0 + 3600),
        sg("click", 3, d1, url=url(3), useragent=BROWSER, timestamp=t0 + 3600),
        sg("click", 4, d1, url=url(4), useragent=BROWSER, timestamp=t0 + 3601),
        sg("click", 5, d2, url=url(5), useragent=BROWSER, timestamp=t0 + 3600),  # honeypot
        sg("click", 6, d2, url=url(1), useragent="python-requests/2.31", timestamp=t0 + 4000),
        sg("click", 7, d2, url=url(3), useragent=BROWSER, ip="64.235.150.9", timestamp=t0 + 5000),
        sg("click", 8, d2, url=url(2), useragent=BROWSER, timestamp=t0 + 9000),  # a person
    ]
    post(app_client, batch)
    verdicts = {e.event_key: (e.is_machine, e.machine_reason) for e in stored(engine)}
    assert verdicts == {
        "sg:evt-click-1": (True, "too_fast_after_delivery"),
        "sg:evt-click-2": (True, "burst_clicks"),
        "sg:evt-click-3": (True, "burst_clicks"),
        "sg:evt-click-4": (True, "burst_clicks"),
        "sg:evt-click-5": (True, "honeypot"),
        "sg:evt-click-6": (True, "scanner_user_agent"),
        "sg:evt-click-7": (True, "scanner_network"),
        "sg:evt-click-8": (False, None),
    }
    # a burst that spans two posts: the clicks already stored are re-marked
    post(
        app_client,
        [
            sg("click", 20, d0, url=url(1), useragent=BROWSER, timestamp=t0 + 7200),
            sg("click", 21, d0, url=url(3), useragent=BROWSER, timestamp=t0 + 7200),
        ],
    )
    assert not any(e.is_machine for e in stored(engine) if e.event_key in ("sg:evt-click-20", "sg:evt-click-21"))
    post(app_client, [sg("click", 22, d0, url=url(4), useragent=BROWSER, timestamp=t0 + 7201)])
    assert {
        e.event_key: e.machine_reason
        for e in stored(engine)
        if e.event_key >= "sg:evt-click-2" and e.event_key[-2:] in ("20", "21", "22")
    } == {"sg:evt-click-20": "burst_clicks", "sg:evt-click-21": "burst_clicks", "sg:evt-click-22": "burst_clicks"}
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(models.Lead)) == 0  # the webhook never makes leads


# --- suppression, then a real send ----------------------------------------------------------------


@pytest.fixture
def seed_slug(engine, seed_article_path: Path) -> str:
    with session_scope(engine) as session:
        return import_article(session, seed_article_path).row.slug


def _campaign(engine, settings, slug: str) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return create_campaign(session, settings, article_slug=slug, segment="all").id


def _recipients(engine, campaign_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return dict(
            s.execute(
                select(Subscriber.email, Delivery.status)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.campaign_id == campaign_id)
            ).all()
        )


SUPPRESSION_PATHS = {
    # name: (events for reader0's delivery, subscriber status, suppression reason)
    "hard bounce": ([{"event": "bounce", "type": "bounce", "reason": "550 5.1.1 user unknown"}], "bounced", "bounced"),
    "drop: bounced address": ([{"event": "dropped", "reason": "Bounced Address"}], "bounced", "bounced"),
    "drop: invalid": ([{"event": "dropped", "reason": "Invalid"}], "bounced", "invalid"),
    "spam report": ([{"event": "spamreport"}], "complained", "complained"),
    "unsubscribe": ([{"event": "unsubscribe"}], "unsubscribed", "unsubscribed"),
    "group unsubscribe": ([{"event": "group_unsubscribe", "asm_group_id": 1}], "unsubscribed", "unsubscribed"),
    "three soft bounces": (
        [{"event": "bounce", "type": "blocked"}, {"event": "blocked"}, {"event": "bounce", "type": "blocked"}],
        "bounced",
        "bounced",
    ),
}


@pytest.mark.parametrize("path", list(SUPPRESSION_PATHS))
def test_each_suppression_path_then_a_send_leaves_the_address_out(settings, engine, seed_slug, path) -> None:  # type: ignore[no-untyped-def]
    events, status, reason = SUPPRESSION_PATHS[path]
    add_subscribers(engine, 3)
    first = _campaign(engine, settings, seed_slug)
    assert send_campaign(engine, settings, first).sent == 3  # the outbox: the settings carry no SendGrid key
    with session_scope(engine) as s:
        d0 = s.scalar(
            select(Delivery.id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == "reader0@example.com", Delivery.campaign_id == first)
        )
    client = TestClient(create_app(settings, engine, tracking=options()))
    batch = [
        dict(
            e,
            email="reader0@example.com",
            sg_event_id=f"{path}-{i}",
            timestamp=int(time.time()) - 30,
            delivery_id=str(d0),
            campaign_id=str(first),
        )
        for i, e in enumerate(events)
    ]
    assert post(client, batch).status_code == 200
    with session_scope(engine) as s:
        reader0 = s.scalar(select(Subscriber).where(Subscriber.email == "reader0@example.com"))
        assert reader0.status == status and reader0.status_changed_at is not None
        assert [(x.email, x.reason, x.source) for x in s.scalars(select(Suppression))] == [
            ("reader0@example.com", reason, "sendgrid")
        ]
    second = _campaign(engine, settings, seed_slug)
    summary = send_campaign(engine, settings, second)
    assert summary.sent == 2
    assert _recipients(engine, second) == {"reader1@example.com": "sent", "reader2@example.com": "sent"}
    files = list((Path(settings.outbox_dir) / f"campaign-{second}").glob("*.eml"))
    assert len(files) == 2 and not any(b"reader0@example.com" in f.read_bytes() for f in files)


def test_soft_bounces_below_the_limit_do_not_suppress_and_delivered_resets(settings, engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    client = TestClient(create_app(settings, engine, tracking=options(soft_bounce_limit=3)))
    t = int(time.time()) - 600
    d0 = w.deliveries[0]
    post(client, [sg("bounce", 1, d0, type="blocked", timestamp=t), sg("blocked", 2, d0, timestamp=t + 1)])
    post(client, [sg("delivered", 3, d0, timestamp=t + 2)])  # delivered again: the count starts over
    post(
        client,
        [sg("bounce", 4, d0, type="blocked", timestamp=t + 3), sg("bounce", 5, d0, type="blocked", timestamp=t + 4)],
    )
    with session_scope(engine) as s:
        assert s.get(Subscriber, w.subscribers[0]).status == "active"
        assert s.scalar(select(func.count()).select_from(Suppression)) == 0
    post(client, [sg("bounce", 6, d0, type="blocked", timestamp=t + 5)])
    with session_scope(engine) as s:
        assert s.get(Subscriber, w.subscribers[0]).status == "bounced"
        assert s.scalar(select(Suppression.detail)) == "sendgrid: 3 soft bounces"
    limit1 = TestClient(create_app(settings, engine, tracking=options(soft_bounce_limit=1)))
    post(limit1, [sg("blocked", 7, w.deliveries[1], timestamp=t + 6, email="reader1@example.com")])
    with session_scope(engine) as s:
        assert s.get(Subscriber, w.subscribers[1]).status == "bounced"


def test_other_drops_and_resubscribe_change_nothing(app_client, engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    post(
        app_client,
        [
            sg("dropped", 1, w.deliveries[0], reason="Invalid SMTPAPI header"),
            sg("dropped", 2, w.deliveries[0], reason="Spam Content (if spam checker app enabled)"),
            sg("group_resubscribe", 3, w.deliveries[0]),
            sg("deferred", 4, w.deliveries[0]),
        ],
    )
    with session_scope(engine) as s:
        assert s.get(Subscriber, w.subscribers[0]).status == "active"
        assert s.scalar(select(func.count()).select_from(Suppression)) == 0


def test_a_bounce_mid_send_takes_the_address_out_of_the_rest(settings, engine, seed_slug) -> None:  # type: ignore[no-untyped-def]
    add_subscribers(engine, 4)
    campaign_id = _campaign(engine, settings, seed_slug)
    assert start_sending(engine, settings, campaign_id) == 4  # ledger built, nothing sent yet
    with session_scope(engine) as s:
        sub = s.scalar(select(Subscriber.id).where(Subscriber.email == "reader3@example.com"))
    client = TestClient(create_app(settings, engine, tracking=options()))
    # a bounce from an earlier mailing (no delivery of ours): found by address
    post(
        client,
        [
            {
                "event": "bounce",
                "type": "bounce",
                "email": "READER3@example.com",
                "sg_event_id": "old-1",
                "timestamp": int(time.time()),
            }
        ],
    )
    assert _recipients(engine, campaign_id)["reader3@example.com"] == "suppressed"
    summary = drain(engine, settings, campaign_id)
    assert summary.sent == 3
    assert _recipients(engine, campaign_id) == {f"reader{i}@example.com": "sent" for i in range(3)} | {
        "reader3@example.com": "suppressed"
    }
    with session_scope(engine) as s:
        assert s.get(Subscriber, sub).status == "bounced"


def test_stronger_reason_wins_and_erased_is_left_alone(app_client, engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    with session_scope(engine) as s:
        s.get(Subscriber, w.subscribers[2]).status = "erased"
    post(
        app_client,
        [
            sg("unsubscribe", 1, w.deliveries[0]),
            sg("spamreport", 2, w.deliveries[0]),
            sg("bounce", 3, w.deliveries[2], type="bounce", email="reader2@example.com"),
        ],
    )
    with session_scope(engine) as s:
        assert s.get(Subscriber, w.subscribers[0]).status == "complained"
        assert s.get(Subscriber, w.subscribers[2]).status == "erased"
        assert [(x.email, x.reason) for x in s.scalars(select(Suppression))] == [("reader0@example.com", "complained")]


# --- the report ----------------------------------------------------------------------------------


def test_report_counts_provider_events_and_machines(app_client, engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine)
    d0, d1, d2 = w.deliveries
    batch = [sg("processed", i, d) for i, d in enumerate(w.deliveries)]
    batch += [
        sg("delivered", 1, d0),
        sg("delivered", 2, d1),
        sg("deferred", 1, d2),
        sg("deferred", 2, d2),
        sg("bounce", 1, d2, type="bounce", email="reader2@example.com"),
        sg("bounce", 2, d1, type="blocked", email="reader1@example.com"),
        sg("dropped", 1, d1, reason="Bounced Address", email="reader1@example.com"),
        sg("spamreport", 1, d0),
        sg("open", 1, d0, useragent=BROWSER),
        sg("open", 2, d0, useragent=BROWSER, sg_machine_open=True),
        sg("open", 3, d1, useragent="Mozilla/5.0"),
    ]
    post(app_client, batch)
    with session_scope(engine) as s:
        report = campaign_report(s, w.campaign_id)
    assert {k: report[k] for k in ("delivered", "deferred", "bounced", "dropped", "complaints")} == {
        "delivered": 2,
        "deferred": 2,
        "bounced": 2,
        "dropped": 1,
        "complaints": 1,
    }
    assert report["provider"]["deferred_messages"] == 1 and report["provider"]["bounced_hard"] == 1
    assert report["provider"]["bounced_soft"] == 1 and report["provider"]["processed"] == 3
    assert report["opens"] == {"unique_human": 1, "unique_machine": 2, "total": 3}
    assert report["machine_reasons"] == {"opens": {"sg_machine_open": 1, "apple_mpp": 1}, "clicks": {}}
    for key in ("clicks", "leads", "cta_leads", "links", "unsubscribes"):
        assert key in report


# --- NUL characters (issue 14, hostile item 1) -----------------------------------------------------


def nul_batch(w: World, size: int, tag: str = "") -> list[dict]:
    """``size`` events, NULs in every field the ingest reads or keeps, on all store paths: the
    dropped reason, the bounce's reason (a suppression note), the user agent and URL of a click,
    the address and message id (the X-Message-Id fallback), a category list, a key of the raw
    JSON and an event type. The rest are plain deliveries, to reach the batch size."""
    d0, d1, d2 = w.deliveries
    odd = [
        sg("dropped", 0, d0, reason="bad\u0000byte"),
        sg("click", 0, d0, url="https://news.example.test/c/tok/1?x=\u0000", useragent=f"{BROWSER}\u0000"),
        sg("bounce", 0, d2, type="bounce", reason="550 \u0000 gone", email="reader2@example.com"),
        {
            "event": "delivered",
            "sg_event_id": f"fallback{tag}",
            "sg_message_id": "MSG1\u0000.filter1",
            "email": "Reader1@Example.com\u0000",
            "timestamp": int(time.time()) - 60,
        },
        sg("open", 0, d1, category=["news\u0000", "april"], **{"odd\u0000key": "v\u0000"}, useragent="\u0000"),
        {**sg("delivered", 0, d1), "event": "delivered\u0000", "marketing_campaign_name": "\u0000\u0000"},
        sg("processed", 0, d0, smtp_id="<\u0000@x>", ip="203.0.113.9\u0000"),
    ]
    batch = odd[:size]
    batch += [
        sg("delivered", 10 + i, w.deliveries[i % 3], reason="r\u0000" if i % 50 == 0 else "ok")
        for i in range(size - len(batch))
    ]
    for item in batch:
        item["sg_event_id"] = f"{item['sg_event_id']}{tag}"
    return batch


def no_nul_stored(engine: Engine) -> None:
    """No stored event or suppression holds a NUL, and PostgreSQL's JSON functions read every
    event's raw data (they refuse a ``\\u0000`` escape)."""
    for e in stored(engine):
        texts = [e.event_key, e.type, e.user_agent or "", e.ip_prefix or "", json.dumps(e.data)]
        assert not any("\x00" in t or "\\u0000" in t for t in texts), e.event_key
    with session_scope(engine) as s:
        assert not any("\x00" in (x.detail or "") + x.email for x in s.scalars(select(Suppression)))
        if engine.dialect.name == "postgresql":
            from sqlalchemy import text

            s.execute(text("SELECT data->>'reason', data::jsonb FROM events")).all()


@pytest.mark.parametrize("size", [1, 7, 8, 511, 512, 1000])
def test_nul_characters_in_any_field_are_stored_without_them_at_every_batch_size(app_client, engine, size) -> None:  # type: ignore[no-untyped-def]
    """A NUL in an event answered 500 on PostgreSQL for batches of 8-511 events (the JSON
    insert), every retry, so the batch's bounces and unsubscribes were lost. Each size on each
    side of the store's three insert paths (VALUES, JSON, COPY): every event stored, once."""
    w = build_world(engine)
    batch = nul_batch(w, size)
    answer = post(app_client, batch)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["stored"] == size
    assert count(engine, Event) == size
    no_nul_stored(engine)
    rows = {e.event_key: e for e in stored(engine)}
    if size >= 3:
        assert rows["sg:evt-bounce-0"].type == "bounce"
        with session_scope(engine) as s:  # the bounce with a NUL in its reason still suppresses
            assert s.get(Subscriber, w.subscribers[2]).status == "bounced"
            assert s.scalar(select(Suppression.detail)) == "sendgrid bounce: 550  gone"
    if size >= 2:
        click = rows["sg:evt-click-0"]
        assert click.user_agent == BROWSER and click.link_id == w.links[1]
    if size >= 4:
        assert rows["sg:fallback"].delivery_id == w.deliveries[1]  # address and message id, NULs out
    if size >= 5:
        assert rows["sg:evt-open-0"].data["oddkey"] == "v" and rows["sg:evt-open-0"].data["category"][0] == "news"
    assert post(app_client, batch).json()["stored"] == 0  # a retry counts once


@pytest.mark.parametrize("size", [1, 7, 8, 511, 512])
def test_nul_characters_given_straight_to_ingest_are_not_stored(engine, size) -> None:  # type: ignore[no-untyped-def]
    """Events handed to ``ingest_events`` unparsed (real NUL characters, not JSON escapes) take
    the same three insert paths: the store strips NUL itself (tracking.queries.insert_event_rows)."""
    from newsletter.tracking import ingest_events

    w = build_world(engine)
    batch = nul_batch(w, size)
    assert "\x00" in batch[0]["reason"]  # real NUL characters, as a caller's own dicts may hold
    with session_scope(engine) as s:
        result = ingest_events(s, batch)
    assert result.stored == size
    no_nul_stored(engine)


def test_a_backslash_before_u0000_is_text_not_a_nul(app_client, engine) -> None:  # type: ignore[no-untyped-def]
    """Only the escape is a NUL: a backslash followed by "u0000" in a value is kept as it is."""
    w = build_world(engine)
    assert post(app_client, [sg("dropped", 1, w.deliveries[0], reason="C:\\u0000 path")]).status_code == 200
    assert stored(engine)[0].data["reason"] == "C:\\u0000 path"


@pytest.mark.parametrize("size", [1, 8, 512])
def test_half_a_surrogate_pair_is_replaced_and_the_batch_stored(app_client, engine, size) -> None:  # type: ignore[no-untyped-def]
    """``\\ud800`` alone is valid JSON grammar but no character: the parser refused the whole
    batch (400, so SendGrid retries it for a day, then drops its bounces). Replaced by U+FFFD;
    a real pair (an emoji) is kept."""
    w = build_world(engine)
    batch = [
        sg("bounce", i, w.deliveries[i % 3], type="bounce", reason="550 \ud800 gone", category=["\U0001f600"])
        for i in range(size)
    ]
    body = json.dumps(batch).encode()  # ASCII, the surrogate as an escape: "\ud800"
    assert b"\\ud800" in body
    answer = post(app_client, body)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["stored"] == size
    data = stored(engine)[0].data
    assert data["reason"] == "550 \ufffd gone" and data["category"] == ["\U0001f600"]
