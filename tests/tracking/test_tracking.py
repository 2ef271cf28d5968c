"""The tracking room: classification, address truncation, opens, clicks, leads, unsubscribes,
preferences. Store tests run on SQLite and PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from factories import add_article, add_campaign
from newsletter.content.model import Article as ArticleContent
from newsletter.content.model import CallToAction, Section
from newsletter.db import session_scope
from newsletter.db.models import (
    CampaignLink,
    Delivery,
    Event,
    Lead,
    Subscriber,
    SubscriberTag,
    Suppression,
    utcnow,
)
from newsletter.tracking import (
    REASONS,
    Classifier,
    InvalidPreferences,
    RequestInfo,
    UnknownDelivery,
    UnknownLink,
    classify,
    default_classifier,
    load_preferences,
    record_click,
    record_open,
    save_preferences,
    truncate_ip,
    unsubscribe,
)

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
HUMAN = RequestInfo(ip="203.0.113.77", user_agent=BROWSER, method="GET")
BOOKING = "https://rootsmentalwellness.example/book"
ARTICLE_URL = "https://rootsmentalwellness.example/blog/ketamine"


@dataclass
class World:
    campaign_id: int
    other_campaign_id: int
    ada: int  # subscriber ids
    bob: int
    d_ada: int  # deliveries of the first campaign (sent an hour ago)
    d_bob: int
    d_ada_queued: int  # Ada's delivery of the second campaign, still queued


def build_world(engine: Engine) -> World:
    content = ArticleContent(
        title="Ketamine-assisted psychotherapy",
        slug="ketamine",
        sections=(Section(None, ("First paragraph.",)),),
        cta=CallToAction("Ready to talk?", "Connect today"),
    )
    with session_scope(engine) as s:
        article = add_article(s, slug="ketamine", title=content.title, content=content.to_dict())
        campaigns = []
        for name in ("April", "May"):
            c = add_campaign(
                s, article.id, name, subject="Hello %%first_name%%", html="<p>Hi %%first_name_html%%</p>", text="Hi"
            )
            s.add_all(
                [
                    CampaignLink(campaign_id=c.id, position=1, url=ARTICLE_URL, label="Read", kind="article"),
                    CampaignLink(campaign_id=c.id, position=2, url=BOOKING, label="Connect today", kind="cta"),
                    CampaignLink(campaign_id=c.id, position=3, url="https://example.test/hp", kind="honeypot"),
                ]
            )
            campaigns.append(c)
        ada = Subscriber(email="ada@example.com", first_name="Ada")
        bob = Subscriber(email="bob@example.com", first_name=None)
        s.add_all([ada, bob])
        s.flush()
        sent = utcnow() - timedelta(hours=1)
        d_ada = Delivery(campaign_id=campaigns[0].id, subscriber_id=ada.id, status="sent", sent_at=sent)
        d_bob = Delivery(campaign_id=campaigns[0].id, subscriber_id=bob.id, status="sent", sent_at=sent)
        d_queued = Delivery(campaign_id=campaigns[1].id, subscriber_id=ada.id, status="queued")
        s.add_all([d_ada, d_bob, d_queued])
        s.flush()
        return World(campaigns[0].id, campaigns[1].id, ada.id, bob.id, d_ada.id, d_bob.id, d_queued.id)


def events(engine: Engine, kind: str | None = None) -> list[Event]:
    with session_scope(engine) as s:
        q = select(Event).order_by(Event.id)
        return list(s.scalars(q.where(Event.type == kind) if kind else q))


# --- classification (no store) -------------------------------------------------------------


#: A person's click on an article link an hour after the send (no Accept-Language): what each
#: classification test changes one thing of.
A_CLICK = dict(
    kind="click",
    user_agent=BROWSER,
    ip="198.51.100.7",
    method="GET",
    seconds_since_sent=3600.0,
    link_kind="article",
)


def _verdict(**overrides):  # type: ignore[no-untyped-def]
    return classify(**{**A_CLICK, **overrides})


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({}, None),
        ({"kind": "open", "link_kind": None}, None),
        ({"method": "HEAD"}, "head_request"),
        ({"method": "head", "kind": "open"}, "head_request"),
        ({"link_kind": "honeypot"}, "honeypot"),
        ({"user_agent": None}, "no_user_agent"),
        ({"user_agent": "   "}, "no_user_agent"),
        ({"user_agent": "python-requests/2.31.0"}, "scanner_user_agent"),
        ({"user_agent": "curl/8.5.0"}, "scanner_user_agent"),
        ({"user_agent": "Go-http-client/1.1"}, "scanner_user_agent"),
        ({"user_agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"}, "scanner_user_agent"),
        ({"user_agent": "Microsoft Office Protection"}, "scanner_user_agent"),
        (
            {"user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36"},
            "scanner_user_agent",
        ),
        ({"user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}, "scanner_user_agent"),
        ({"kind": "open", "user_agent": "Mozilla/5.0"}, "apple_mpp"),
        ({"kind": "open", "ip": "17.58.101.3"}, "apple_mpp"),
        ({"kind": "open", "ip": "::ffff:17.58.101.3"}, "apple_mpp"),
        ({"kind": "click", "ip": "17.58.101.3"}, None),  # MPP never clicks: an Apple address alone proves nothing
        ({"ip": "64.235.150.9"}, "scanner_network"),
        ({"kind": "open", "ip": "209.222.82.1"}, "scanner_network"),
        ({"seconds_since_sent": 2.0}, "too_fast_after_delivery"),
        ({"seconds_since_sent": -1.0}, "too_fast_after_delivery"),
        ({"seconds_since_sent": 5.0}, None),
        ({"seconds_since_sent": None}, None),
        ({"kind": "open", "seconds_since_sent": 1.0}, None),  # opens are not timed
        ({"ip": "not an address"}, None),
    ],
)
def test_classify_rules(overrides, reason) -> None:  # type: ignore[no-untyped-def]
    verdict = _verdict(**overrides)
    assert verdict.reason == reason
    assert verdict.is_machine is (reason is not None)
    assert reason is None or reason in REASONS


def test_classify_first_rule_wins_and_lists_are_configurable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert _verdict(method="HEAD", user_agent=None).reason == "head_request"
    agents, networks = tmp_path / "agents.txt", tmp_path / "networks.txt"
    agents.write_text("# comment\nMyScanner  # trailing comment\n\n", encoding="utf-8")
    networks.write_text("scanner_network 2001:db8::/32\n", encoding="utf-8")
    custom = Classifier.from_files(agents, networks, min_click_seconds=60)
    assert custom.agent_patterns == ("myscanner",)
    assert _verdict(user_agent="x MYSCANNER/1", classifier=custom).reason == "scanner_user_agent"
    assert _verdict(user_agent="curl/8", classifier=custom).reason is None
    assert _verdict(ip="2001:db8:1::9", classifier=custom).reason == "scanner_network"
    assert _verdict(seconds_since_sent=30.0, classifier=custom).reason == "too_fast_after_delivery"
    networks.write_text("scanner_network not-a-network\n", encoding="utf-8")
    with pytest.raises(ValueError, match="networks.txt:1"):
        Classifier.from_files(agents, networks)


def test_shipped_lists_load_once() -> None:
    assert default_classifier() is default_classifier()
    assert {"barracuda", "python-requests", "headlesschrome"} <= set(default_classifier().agent_patterns)
    assert {reason for reason, _ in default_classifier().networks} == {"apple_mpp", "scanner_network"}


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        (" 198.51.100.1 ", "198.51.100.0/24"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::/48"),
        ("::ffff:203.0.113.77", "203.0.113.0/24"),
        ("fe80::1%eth0", "fe80::/48"),
        ("testclient", None),
        ("", None),
        (None, None),
        ("999.1.1.1", None),
    ],
)
def test_truncate_ip(ip, expected) -> None:  # type: ignore[no-untyped-def]
    assert truncate_ip(ip) == expected


# --- opens and clicks ------------------------------------------------------------------------


def test_open_is_recorded_with_verdict_and_truncated_address(engine: Engine) -> None:
    w = build_world(engine)
    with session_scope(engine) as s:
        assert record_open(s, w.d_ada, HUMAN).is_machine is False
        assert record_open(s, w.d_ada, RequestInfo("203.0.113.77", BROWSER, "HEAD")).reason == "head_request"
        assert record_open(s, w.d_ada, RequestInfo("17.1.2.3", "Mozilla/5.0", "GET")).reason == "apple_mpp"
        assert record_open(s, w.d_bob, RequestInfo("2001:db8:abcd:12::1", "x" * 900, "GET")).is_machine is False
    opens = events(engine, "open")
    assert [(e.delivery_id, e.is_machine, e.machine_reason) for e in opens] == [
        (w.d_ada, False, None),
        (w.d_ada, True, "head_request"),
        (w.d_ada, True, "apple_mpp"),
        (w.d_bob, False, None),
    ]
    assert [e.ip_prefix for e in opens] == ["203.0.113.0/24", "203.0.113.0/24", "17.1.2.0/24", "2001:db8:abcd::/48"]
    assert all(e.campaign_id == w.campaign_id and e.source == "tracking" for e in opens)
    assert opens[0].subscriber_id == w.ada and opens[3].subscriber_id == w.bob
    assert len(opens[3].user_agent) == 500
    assert len({e.event_key for e in opens}) == 4 and all(len(e.event_key) == 32 for e in opens)
    assert all("203.0.113.77" not in (e.ip_prefix or "") for e in opens)


def test_unknown_delivery(engine: Engine) -> None:
    build_world(engine)
    with session_scope(engine) as s, pytest.raises(UnknownDelivery):
        record_open(s, 999_999, HUMAN)
    assert events(engine) == []


def test_click_answers_only_the_registered_url(engine: Engine) -> None:
    w = build_world(engine)
    with session_scope(engine) as s:
        result = record_click(s, w.d_ada, 1, HUMAN)
    assert (result.url, result.link_kind, result.lead_id, result.is_machine) == (ARTICLE_URL, "article", None, False)
    with session_scope(engine) as s, pytest.raises(UnknownLink):
        record_click(s, w.d_ada, 4, HUMAN)
    [click] = events(engine, "click")
    assert click.link_id is not None and click.data == {"position": 1} and click.ip_prefix == "203.0.113.0/24"


def test_fast_and_honeypot_clicks_are_machine(engine: Engine) -> None:
    w = build_world(engine)
    with session_scope(engine) as s:
        sent_at = s.get(Delivery, w.d_ada).sent_at
        fast = record_click(s, w.d_ada, 2, HUMAN, now=sent_at + timedelta(seconds=2))
        trap = record_click(s, w.d_ada, 3, HUMAN)
    assert (fast.is_machine, fast.reason, fast.lead_id) == (True, "too_fast_after_delivery", None)
    assert (trap.is_machine, trap.reason) == (True, "honeypot")
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Lead)) == 0


def test_human_cta_click_creates_then_warms_one_lead(engine: Engine) -> None:
    w = build_world(engine)
    with session_scope(engine) as s:
        first = record_click(s, w.d_ada, 2, HUMAN)
    with session_scope(engine) as s:
        created = s.get(Lead, first.lead_id)
        assert (created.subscriber_id, created.campaign_id, created.status, created.cta_clicks) == (
            w.ada,
            w.campaign_id,
            "new",
            1,
        )
        first_updated = created.updated_at
    later = utcnow() + timedelta(minutes=5)
    with session_scope(engine) as s:
        second = record_click(s, w.d_ada, 2, HUMAN, now=later)
        machine = record_click(s, w.d_ada, 2, RequestInfo("203.0.113.9", "curl/8.5", "GET"))
        bob_machine = record_click(s, w.d_bob, 2, RequestInfo("203.0.113.9", BROWSER, "HEAD"))
    assert second.lead_id == first.lead_id
    assert (machine.is_machine, machine.lead_id, bob_machine.lead_id) == (True, None, None)
    with session_scope(engine) as s:
        leads = s.scalars(select(Lead)).all()
        assert [(lead.subscriber_id, lead.cta_clicks) for lead in leads] == [(w.ada, 2)]
        assert leads[0].updated_at > first_updated and leads[0].created_at == created.created_at
        assert leads[0].link_id is not None
    assert [e.is_machine for e in events(engine, "click")] == [False, False, True, True]


def test_simultaneous_first_cta_clicks_make_one_lead(engine: Engine) -> None:
    w = build_world(engine)
    barrier, errors = threading.Barrier(4), []

    def click() -> None:
        try:
            barrier.wait(timeout=10)
            with session_scope(engine) as s:
                record_click(s, w.d_ada, 2, HUMAN)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    with session_scope(engine) as s:
        assert [(lead.subscriber_id, lead.cta_clicks) for lead in s.scalars(select(Lead))] == [(w.ada, 4)]


# --- unsubscribe -----------------------------------------------------------------------------


def test_unsubscribe_is_complete_and_idempotent(engine: Engine) -> None:
    w = build_world(engine)
    with session_scope(engine) as s:
        first = unsubscribe(s, w.d_ada, source="one_click", request=HUMAN)
    with session_scope(engine) as s:
        again = unsubscribe(s, w.d_ada, source="link")
    assert (first.changed, first.suppressed_deliveries) == (True, 1)
    assert (again.changed, again.suppressed_deliveries) == (False, 0)
    with session_scope(engine) as s:
        ada = s.get(Subscriber, w.ada)
        assert ada.status == "unsubscribed" and ada.status_changed_at is not None
        assert [(x.email, x.reason, x.source) for x in s.scalars(select(Suppression))] == [
            ("ada@example.com", "unsubscribed", "one_click")
        ]
        assert s.get(Delivery, w.d_ada_queued).status == "suppressed"
        assert s.get(Delivery, w.d_ada).status == "sent"  # history is not rewritten
        assert s.get(Subscriber, w.bob).status == "active"
    [event] = events(engine, "unsubscribe")
    assert (event.delivery_id, event.subscriber_id, event.is_machine, event.data) == (
        w.d_ada,
        w.ada,
        False,
        {"source": "one_click"},
    )
    assert event.ip_prefix == "203.0.113.0/24"
    with session_scope(engine) as s, pytest.raises(ValueError):
        unsubscribe(s, w.d_ada, source="email")  # type: ignore[arg-type]


def test_unsubscribe_keeps_a_bounced_status(engine: Engine) -> None:
    w = build_world(engine)
    with session_scope(engine) as s:
        s.get(Subscriber, w.bob).status = "bounced"
    with session_scope(engine) as s:
        result = unsubscribe(s, w.d_bob, source="link")
    with session_scope(engine) as s:
        assert s.get(Subscriber, w.bob).status == "bounced"
        assert s.scalar(select(Suppression.source).where(Suppression.email == "bob@example.com")) == "link"
    assert result.changed is True


# --- preferences -----------------------------------------------------------------------------


def test_preferences_change_name_and_interests_only(engine: Engine) -> None:
    w = build_world(engine)
    with session_scope(engine) as s:
        s.add_all([SubscriberTag(subscriber_id=w.ada, tag="vip"), SubscriberTag(subscriber_id=w.ada, tag="anxiety")])
    with session_scope(engine) as s:
        assert load_preferences(s, w.d_ada).tags == {"anxiety"}
        prefs = save_preferences(s, w.d_ada, first_name="  Ada   Lovelace ", tags=["ketamine", "ptsd"])
    assert (prefs.first_name, prefs.tags) == ("Ada Lovelace", {"ketamine", "ptsd"})
    with session_scope(engine) as s:
        assert sorted(t.tag for t in s.get(Subscriber, w.ada).tags) == ["ketamine", "ptsd", "vip"]
        assert save_preferences(s, w.d_ada, first_name="", tags=[]).first_name is None
        # Control characters are cleaned, as the CSV import cleans them (audiences.clean_name).
        assert save_preferences(s, w.d_ada, first_name="Ada\x00\r\nLove", tags=[]).first_name == "Ada Love"
        for bad in ({"first_name": "x" * 101, "tags": []}, {"first_name": "Ada", "tags": ["vip"]}):
            with pytest.raises(InvalidPreferences):
                save_preferences(s, w.d_ada, **bad)


# --- the web app's writer: batches, the lean insert ---------------------------------------------


def test_batch_functions_answer_each_item(engine: Engine) -> None:
    from newsletter.tracking import record_clicks, record_opens

    w = build_world(engine)
    when = utcnow()
    with session_scope(engine) as s:
        opens = record_opens(
            s, [(w.d_ada, HUMAN, when), (999_999, HUMAN, when), (w.d_bob, RequestInfo("17.1.2.3", "Mozilla/5.0"), when)]
        )
        clicks = record_clicks(
            s,
            [
                (w.d_ada, 1, HUMAN, when),
                (w.d_ada, 9, HUMAN, when),
                (999_999, 1, HUMAN, when),
                (w.d_bob, 2, HUMAN, when),
            ],
        )
    assert [v.reason if v else "unknown" for v in opens] == [None, "unknown", "apple_mpp"]
    assert isinstance(clicks[1], UnknownLink) and isinstance(clicks[2], UnknownDelivery)
    assert clicks[0].url == ARTICLE_URL and clicks[3].lead_id is not None
    assert [e.type for e in events(engine)] == ["open", "open", "click", "click", "lead"]
    with engine.connect() as conn:
        assert record_opens(conn, []) == [] and record_clicks(conn, []) == []


def test_lean_insert_stores_what_the_orm_would(engine: Engine) -> None:
    """Times, booleans and JSON written by ``insert_events`` read back exactly like ORM rows."""
    from sqlalchemy import text

    from newsletter.tracking.queries import insert_events

    w = build_world(engine)
    when = utcnow().replace(microsecond=0) + timedelta(microseconds=5)  # a zero-padded fraction too
    row = dict(
        type="open",
        source="tracking",
        campaign_id=w.campaign_id,
        delivery_id=w.d_ada,
        subscriber_id=w.ada,
        is_machine=True,
        machine_reason="x",
        occurred_at=when,
        data={"a": [1, "é"]},
    )  # the same row, once through the ORM and once through the lean insert
    with session_scope(engine) as s:
        s.add(Event(event_key="orm", **row))
        s.flush()
        assert insert_events(
            s,
            [
                dict(event_key="lean", **row),
                dict(event_key="orm", type="open", source="x", is_machine=False, occurred_at=when),
            ],
            new_keys=True,
        ) == ["lean"]  # an existing key is skipped, not an error
    with session_scope(engine) as s:
        orm, lean = (s.scalar(select(Event).where(Event.event_key == k)) for k in ("orm", "lean"))
        assert (lean.occurred_at, lean.is_machine, lean.data, lean.ip_prefix) == (when, True, {"a": [1, "é"]}, None)
        assert (orm.occurred_at, orm.is_machine, orm.data) == (lean.occurred_at, lean.is_machine, lean.data)
        raw = dict(s.execute(text("SELECT event_key, CAST(occurred_at AS VARCHAR) FROM events")).all())
        assert raw["orm"] == raw["lean"]  # the same text on SQLite, the same timestamptz on PostgreSQL
        assert s.scalar(select(func.count()).select_from(Event).where(Event.occurred_at == when)) == 2
        with pytest.raises(ValueError, match="naive"):
            insert_events(
                s,
                [dict(event_key="n", type="open", source="x", is_machine=False, occurred_at=when.replace(tzinfo=None))],
            )


def test_recorder_groups_concurrent_requests_and_isolates_a_bad_one(engine: Engine) -> None:
    import asyncio

    from newsletter.tracking import Recorder

    w = build_world(engine)
    recorder = Recorder(engine, idle_seconds=0.2)

    async def many() -> list:  # type: ignore[type-arg]
        tasks = [recorder.open(w.d_ada, HUMAN) for _ in range(30)] + [recorder.open(999_999, HUMAN)]
        tasks += [recorder.click(w.d_bob, 1, HUMAN), recorder.click(w.d_bob, 7, HUMAN)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(many())
    assert all(r.is_machine is False for r in results[:30]) and results[30] is None
    assert results[31].url == ARTICLE_URL and isinstance(results[32], UnknownLink)
    assert recorder.requests == 33 and recorder.batches < 33  # requests share transactions
    assert len(events(engine, "open")) == 30 and len(events(engine, "click")) == 1

    # A row the store refuses (a delivery id past a foreign key, here: a link removed under the
    # cache) fails alone: the other requests of its batch are stored.
    async def with_a_failure() -> list:  # type: ignore[type-arg]
        original = recorder._store

        def store(batch, link):  # type: ignore[no-untyped-def]
            if len(batch) > 1 or batch[0][1][0] == w.d_bob:
                if any(item[1][0] == w.d_bob for item in batch):
                    raise RuntimeError("refused")
            return original(batch, link)

        recorder._store = store  # type: ignore[method-assign]
        try:
            return await asyncio.gather(
                recorder.open(w.d_ada, HUMAN), recorder.open(w.d_bob, HUMAN), return_exceptions=True
            )
        finally:
            recorder._store = original  # type: ignore[method-assign]

    ok, failed = asyncio.run(with_a_failure())
    assert ok.is_machine is False and isinstance(failed, RuntimeError)
    assert len(events(engine, "open")) == 31
    writer = recorder._thread
    recorder.close()  # joins the writer thread: nothing to wait for after it returns
    assert recorder._thread is None and (writer is None or not writer.is_alive())


def test_tokens_keep_the_itsdangerous_format_and_refuse_altered_padding() -> None:
    from itsdangerous import Signer

    from newsletter.tracking import InvalidToken, TokenSigner
    from newsletter.tracking.tokens import _SALT

    signer, reference = TokenSigner("a key"), Signer("a key", salt=_SALT, sep=".")
    for delivery_id in (0, 1, 35, 36, 1295, 1296, 1297, 46_655, 46_656, 123_456, 2**40, 2**63 - 1):
        token = signer.sign(delivery_id)
        assert token == reference.sign(_b36(delivery_id)).decode()
        assert signer.verify(token) == delivery_id
    token = signer.sign(77)
    value, signature = token.rsplit(".", 1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    padded = value + "." + signature[:-1] + alphabet[last ^ 1]  # only a padding bit differs
    assert reference.validate(padded.encode())  # itsdangerous would take it
    for bad in (padded, token + "x", token[:-1], "x." + signature, "", ".", "é." + signature):
        with pytest.raises(InvalidToken):
            signer.verify(bad)


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = digits[digit] + out
        if number == 0:
            return out
