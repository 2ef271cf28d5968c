"""The "Connect today" button, through the web app: a person (lead, 302 to booking), a scanner
(event, no lead, still 302) and an uncertain click (a one-step "continue to booking" page; the lead
counts when the person continues). Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
import warnings
from datetime import timedelta

import pytest
from sqlalchemy import select

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from test_web import BOOKING, BROWSER, build_world

from newsletter.db import session_scope
from newsletter.db.models import Delivery, Event, Lead, utcnow
from newsletter.reports import campaign_report
from newsletter.tracking import ContinueSigner, InvalidToken, TokenSigner, TrackingOptions
from newsletter.web import create_app

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

BROWSER_HEADERS = {"user-agent": BROWSER, "accept-language": "en-US,en;q=0.9"}
CONTINUE = re.compile(r'<form method="post" action="(/continue/[^"]+)">')


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def world(engine):  # type: ignore[no-untyped-def]
    return build_world(engine)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(settings, engine, world, clock) -> TestClient:  # type: ignore[no-untyped-def]
    app = create_app(settings, engine, tracking=TrackingOptions(clock=clock))
    return TestClient(app, client=("203.0.113.77", 50123), headers=BROWSER_HEADERS, follow_redirects=False)


@pytest.fixture
def cta(settings, world):  # type: ignore[no-untyped-def]
    signer = TokenSigner(settings.signing_key())
    return lambda delivery_id: f"/c/{signer.sign(delivery_id)}/2"


def leads(engine) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return [(x.subscriber_id, x.cta_clicks) for x in s.scalars(select(Lead).order_by(Lead.id))]


def events(engine, *types: str) -> list[Event]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return list(s.scalars(select(Event).where(Event.type.in_(types)).order_by(Event.id)))


def report(engine, world):  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return campaign_report(s, world.campaign_id)


def test_a_person_lands_on_booking_and_becomes_a_lead(client, engine, world, cta) -> None:  # type: ignore[no-untyped-def]
    response = client.get(cta(world.d_ada))
    assert response.status_code == 302 and response.headers["location"] == BOOKING
    assert leads(engine) == [(world.ada, 1)]
    [click] = events(engine, "click")
    assert (click.is_machine, click.machine_reason, click.data) == (False, None, {"position": 2})
    [lead] = events(engine, "lead")
    assert (lead.subscriber_id, lead.is_machine, lead.data) == (world.ada, False, {"via": "click"})
    r = report(engine, world)
    assert (r["cta_leads"], r["leads"], r["clicks"]["cta_unique"], r["clicks"]["uncertain"]) == (1, 1, 1, 0)


@pytest.mark.parametrize(
    ("headers", "method", "reason"),
    [
        ({"user-agent": "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"}, "GET", "scanner_user_agent"),
        ({"user-agent": "python-requests/2.31"}, "GET", "scanner_user_agent"),
        ({"user-agent": ""}, "GET", "no_user_agent"),
        ({}, "HEAD", "head_request"),
    ],
)
def test_a_scanner_is_redirected_but_no_lead(client, engine, world, cta, headers, method, reason) -> None:  # type: ignore[no-untyped-def]
    response = client.request(method, cta(world.d_bob), headers=headers)
    assert response.status_code == 302 and response.headers["location"] == BOOKING  # harmless: it follows
    assert leads(engine) == []
    [click] = events(engine, "click")
    assert (click.is_machine, click.machine_reason) == (True, reason)
    assert events(engine, "lead", "cta_confirm") == []
    assert report(engine, world)["cta_leads"] == 0


def test_a_click_seconds_after_delivery_is_a_scanner_too(client, engine, world, cta) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        s.get(Delivery, world.d_bob).sent_at = utcnow() - timedelta(seconds=1)
    response = client.get(cta(world.d_bob))
    assert response.status_code == 302 and leads(engine) == []
    assert events(engine, "click")[0].machine_reason == "too_fast_after_delivery"


def _page(client, url: str, **kw):  # type: ignore[no-untyped-def]
    page = client.get(url, **kw)
    assert page.status_code == 200, page.text
    assert "Continue to booking" in page.text and page.headers["cache-control"] == "no-store, private"
    assert "location" not in page.headers
    match = CONTINUE.search(page.text)
    assert match, page.text
    return page, match.group(1)


@pytest.mark.parametrize("doubt", ["no_accept_language", "quick_click", "unknown_agent"])
def test_an_uncertain_click_gets_one_step_then_counts(client, engine, world, cta, clock, doubt) -> None:  # type: ignore[no-untyped-def]
    headers = dict(BROWSER_HEADERS)
    if doubt == "no_accept_language":
        headers = {"user-agent": BROWSER, "accept-language": ""}
        client.headers.pop("accept-language")
    elif doubt == "quick_click":
        with session_scope(engine) as s:
            s.get(Delivery, world.d_ada).sent_at = utcnow() - timedelta(seconds=12)
    else:
        headers["user-agent"] = "SomeMailApp/3.1 (iPhone)"
    page, action = _page(client, cta(world.d_ada), headers=headers)
    assert leads(engine) == []  # not yet
    [click] = events(engine, "click")
    assert (click.is_machine, click.data) == (False, {"position": 2, "doubt": doubt})
    assert report(engine, world)["clicks"]["uncertain"] == 1
    clock.offset = 4.0  # the person reads the page, then presses the button
    done = client.post(action, data={}, headers={**headers, "origin": "https://news.example.test"})
    assert done.status_code == 303 and done.headers["location"] == BOOKING
    assert "no-store" in done.headers["cache-control"]
    assert leads(engine) == [(world.ada, 1)]
    [confirm] = events(engine, "cta_confirm")
    assert (confirm.is_machine, confirm.machine_reason, confirm.subscriber_id) == (False, None, world.ada)
    [lead] = events(engine, "lead")
    assert lead.data == {"via": "confirm"}
    r = report(engine, world)
    assert (r["cta_leads"], r["clicks"]["cta_confirmed"], r["clicks"]["uncertain"]) == (1, 1, 1)


def test_the_continue_link_works_as_a_plain_get_too(client, engine, world, cta, clock) -> None:  # type: ignore[no-untyped-def]
    _, action = _page(client, cta(world.d_ada), headers={"accept-language": ""})
    clock.offset = 3.0
    done = client.get(action)
    assert done.status_code == 303 and done.headers["location"] == BOOKING
    assert leads(engine) == [(world.ada, 1)]


def test_machines_on_the_continue_link_count_no_lead(client, engine, world, cta, clock) -> None:  # type: ignore[no-untyped-def]
    _, action = _page(client, cta(world.d_ada), headers={"accept-language": ""})
    instant = client.get(action)  # followed at once: a crawler walking the page's links
    clock.offset = 5.0
    scanner = client.get(action, headers={"user-agent": "curl/8.5.0"})
    head = client.head(action)
    assert [r.status_code for r in (instant, scanner, head)] == [303, 303, 303]
    assert all(r.headers["location"] == BOOKING for r in (instant, scanner, head))
    assert leads(engine) == []
    assert [(e.is_machine, e.machine_reason) for e in events(engine, "cta_confirm")] == [
        (True, "too_fast_confirm"),
        (True, "scanner_user_agent"),
        (True, "head_request"),
    ]


def test_the_continue_link_is_signed_and_carries_nothing_personal(client, engine, world, cta, settings, clock) -> None:  # type: ignore[no-untyped-def]
    _, action = _page(client, cta(world.d_ada), headers={"accept-language": ""})
    signed = action.removeprefix("/continue/")
    assert "@" not in signed and "ada" not in signed.lower()
    delivery_id, position, issued_ms = ContinueSigner(settings.signing_key()).verify(signed)
    assert (delivery_id, position) == (world.d_ada, 2) and abs(issued_ms / 1000 - time.time()) < 60
    with pytest.raises(InvalidToken):  # a delivery token is not a continue link, nor the reverse
        TokenSigner(settings.signing_key()).verify(signed)
    clock.offset = 3.0
    forged = ContinueSigner("another key").sign(world.d_bob, 2, int(time.time() * 1000))
    # (a character in the middle of the signature: the last base64 character carries padding bits)
    middle = len(action) - 10
    tampered = action[:middle] + ("A" if action[middle] != "A" else "B") + action[middle + 1 :]
    for bad in (tampered, "/continue/" + forged, "/continue/x", "/continue/" + "a" * 500):
        assert client.get(bad).status_code == 404, bad
    # signed, but for a link that is not the CTA
    not_cta = ContinueSigner(settings.signing_key()).sign(world.d_ada, 1, int(time.time() * 1000))
    assert client.get(f"/continue/{not_cta}").status_code == 404
    assert client.post(action, headers={"origin": "https://evil.example"}).status_code == 403
    assert leads(engine) == []


def test_an_old_continue_link_still_goes_to_booking_without_a_lead(client, engine, world, cta, clock) -> None:  # type: ignore[no-untyped-def]
    _, action = _page(client, cta(world.d_ada), headers={"accept-language": ""})
    clock.offset = 8 * 86400.0
    done = client.post(action)
    assert done.status_code == 303 and done.headers["location"] == BOOKING
    assert leads(engine) == [] and events(engine, "cta_confirm") == []


def test_doubt_on_other_links_just_redirects(client, engine, world, settings) -> None:  # type: ignore[no-untyped-def]
    token = TokenSigner(settings.signing_key()).sign(world.d_ada)
    response = client.get(f"/c/{token}/1", headers={"accept-language": ""})
    assert response.status_code == 302  # only the CTA asks; an article link is just a link
    [click] = events(engine, "click")
    assert click.data == {"position": 1, "doubt": "no_accept_language"}
