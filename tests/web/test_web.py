"""The web app: tracking routes, public pages, errors, the outbox viewer, and one look through a
real headless Chromium. Every store test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx is what the project pins
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from factories import add_article, add_campaign
from newsletter.config import Settings
from newsletter.content.model import Article as ArticleContent
from newsletter.content.model import CallToAction, Section, SignOff
from newsletter.db import make_engine, session_scope
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
from newsletter.preflight.chromium import Browser, BrowserError
from newsletter.tracking import TokenSigner
from newsletter.web import create_app

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
PUBLIC = "https://news.example.test"  # settings.public_url in conftest
BOOKING = "https://rootsmentalwellness.example/book"
ARTICLE_URL = "https://rootsmentalwellness.example/a/ketamine"
CAMPAIGN_HTML = f"""<!doctype html><html><head><title>April</title></head><body>
<p>Hi %%first_name_html%%,</p>
<p><a href="{PUBLIC}/c/%%token%%/1">Read the full article</a></p>
<p><a href="{PUBLIC}/c/%%token%%/2">Connect today</a></p>
<p><a href="{PUBLIC}/w/%%token%%">View in your browser</a> · <a href="{PUBLIC}/u/%%token%%">Unsubscribe</a></p>
<mj-raw-example><img src="{PUBLIC}/o/%%token%%.gif" width="1" height="1" alt=""></mj-raw-example>
</body></html>"""


@dataclass
class World:
    campaign_id: int
    ada: int
    bob: int
    d_ada: int
    d_bob: int
    d_ada_queued: int


def build_world(engine: Engine) -> World:
    content = ArticleContent(
        title="Ketamine-assisted psychotherapy: what to expect",
        slug="ketamine",
        sections=(
            Section(None, ("An <em>opening</em> paragraph.",)),
            Section("How a session goes", ("You arrive &amp; settle in.",)),
        ),
        author="Dr. Rivera",
        published=date(2024, 4, 2),
        cta=CallToAction("Ready to talk? We are here.", "Connect today"),
        signoff=SignOff("Dr. Rivera", "Psychiatrist"),
    )
    with session_scope(engine) as s:
        article = add_article(s, slug=content.slug, title=content.title, content=content.to_dict())
        april = add_campaign(
            s, article.id, "April", subject="Hello %%first_name%%", html=CAMPAIGN_HTML, text="Hi %%first_name%%"
        )
        may = add_campaign(s, article.id, "May", status="sending", html="<p>May</p>", text="May")
        s.flush()
        s.add_all(
            [
                CampaignLink(campaign_id=april.id, position=1, url=ARTICLE_URL, kind="read_more"),
                CampaignLink(campaign_id=april.id, position=2, url=BOOKING, kind="cta"),
            ]
        )
        ada = Subscriber(email="ada@example.com", first_name="Ada")
        bob = Subscriber(email="bob@example.com", first_name="<Bob>")
        s.add_all([ada, bob])
        s.flush()
        s.add(SubscriberTag(subscriber_id=ada.id, tag="vip"))
        sent = utcnow() - timedelta(hours=2)
        d_ada = Delivery(campaign_id=april.id, subscriber_id=ada.id, status="sent", sent_at=sent)
        d_bob = Delivery(campaign_id=april.id, subscriber_id=bob.id, status="sent", sent_at=sent)
        d_queued = Delivery(campaign_id=may.id, subscriber_id=ada.id, status="queued")
        s.add_all([d_ada, d_bob, d_queued])
        s.flush()
        return World(april.id, ada.id, bob.id, d_ada.id, d_bob.id, d_queued.id)


@pytest.fixture
def world(engine: Engine) -> World:
    return build_world(engine)


@pytest.fixture
def client(settings: Settings, engine: Engine, world: World) -> TestClient:
    app = create_app(settings, engine)
    # A browser's headers: every browser sends Accept-Language (its absence makes a CTA click doubtful).
    return TestClient(
        app,
        client=("203.0.113.77", 50123),
        headers={"user-agent": BROWSER, "accept-language": "en-US,en;q=0.9"},
        follow_redirects=False,
    )


@pytest.fixture
def token(settings: Settings):  # type: ignore[no-untyped-def]
    signer = TokenSigner(settings.signing_key())
    return signer.sign


def stored(engine: Engine, kind: str | None = None) -> list[Event]:
    with session_scope(engine) as s:
        q = select(Event).order_by(Event.id)
        return list(s.scalars(q.where(Event.type == kind) if kind else q))


def tamper(tok: str) -> str:
    return tok[:-1] + ("A" if tok[-1] != "A" else "B")


# --- open pixel ------------------------------------------------------------------------------


def test_open_pixel_records_each_request_with_verdict(client, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    url = f"/o/{token(world.d_ada)}.gif"
    first = client.get(url)
    assert first.status_code == 200 and first.headers["content-type"] == "image/gif"
    assert first.content.startswith(b"GIF89a") and len(first.content) == 42
    assert "no-store" in first.headers["cache-control"] and first.headers["pragma"] == "no-cache"
    assert first.headers["referrer-policy"] == "no-referrer" and first.headers["x-content-type-options"] == "nosniff"
    client.get(url)
    assert client.head(url).status_code == 200
    client.get(url, headers={"user-agent": "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"})
    client.get(url, headers={"user-agent": "Mozilla/5.0"})
    opens = stored(engine, "open")
    assert [(e.is_machine, e.machine_reason) for e in opens] == [
        (False, None),
        (False, None),
        (True, "head_request"),
        (True, "scanner_user_agent"),
        (True, "apple_mpp"),
    ]
    assert {e.ip_prefix for e in opens} == {"203.0.113.0/24"}  # never 203.0.113.77
    assert {e.delivery_id for e in opens} == {world.d_ada} and opens[0].user_agent == BROWSER


def test_bad_token_still_gets_the_gif_but_no_event(client, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    for url in (
        f"/o/{tamper(token(world.d_ada))}.gif",
        "/o/nonsense.gif",
        f"/o/{token(987654)}.gif",
        "/o/" + "x" * 5000 + ".gif",
    ):
        response = client.get(url)
        assert response.status_code == 200 and response.content.startswith(b"GIF89a"), url
    assert stored(engine) == []


# --- clicks ----------------------------------------------------------------------------------


def test_click_redirects_only_to_the_registered_url(client, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    tok = token(world.d_ada)
    response = client.get(f"/c/{tok}/1")
    assert response.status_code == 302 and response.headers["location"] == ARTICLE_URL
    assert response.headers["referrer-policy"] == "no-referrer" and "no-store" in response.headers["cache-control"]
    assert client.head(f"/c/{tok}/1").headers["location"] == ARTICLE_URL
    for bad in (
        f"/c/{tok}/9",
        f"/c/{tok}/0",
        f"/c/{tamper(tok)}/1",
        f"/c/{tok}/x",
        f"/c/{tok}/99999999999999999999",
        f"/c/{tok}/1?url=https://evil.example",
        "/c/nonsense/1",
    ):
        response = client.get(bad)
        if bad.endswith("evil.example"):  # the query string is ignored: still the registered link
            assert response.headers["location"] == ARTICLE_URL
            continue
        assert response.status_code == 404, bad
        assert "location" not in response.headers and "text/html" in response.headers["content-type"]
        assert "Page not found" in response.text
    clicks = stored(engine, "click")
    assert [(e.is_machine, e.machine_reason) for e in clicks] == [(False, None), (True, "head_request"), (False, None)]


def test_cta_clicks_make_one_lead_and_machines_none(client, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    assert client.get(f"/c/{token(world.d_ada)}/2").headers["location"] == BOOKING
    client.get(f"/c/{token(world.d_ada)}/2")
    client.get(f"/c/{token(world.d_bob)}/2", headers={"user-agent": "python-requests/2.31"})
    client.get(f"/c/{token(world.d_bob)}/2", headers={"user-agent": "Microsoft Office Protection"})
    client.get(f"/c/{token(world.d_bob)}/1")  # a human click on a non-CTA link: no lead either
    with session_scope(engine) as s:
        assert [(lead.subscriber_id, lead.cta_clicks, lead.status) for lead in s.scalars(select(Lead))] == [
            (world.ada, 2, "new")
        ]


# --- unsubscribe -----------------------------------------------------------------------------


def test_unsubscribe_confirm_page_does_not_unsubscribe(client, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"/u/{token(world.d_ada)}")
    assert response.status_code == 200
    assert '<form method="post">' in response.text and ">Unsubscribe</button>" in response.text
    assert "a***@example.com" in response.text and "ada@example.com" not in response.text
    assert response.headers["cache-control"] == "no-store, private"
    with session_scope(engine) as s:
        assert s.get(Subscriber, world.ada).status == "active"
    assert client.get(f"/u/{tamper(token(world.d_ada))}").status_code == 404


def test_one_click_post_unsubscribes_without_redirect(client, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    url = f"/u/{token(world.d_ada)}"
    headers = {"content-type": "application/x-www-form-urlencoded", "user-agent": "Google-Mail-Unsubscribe"}
    for _ in range(2):  # providers retry; the second POST is the same 200 and changes nothing
        response = client.post(url, content=b"List-Unsubscribe=One-Click", headers=headers)
        assert response.status_code == 200 and "location" not in response.headers
        assert "You&#39;re unsubscribed" in response.text or "You're unsubscribed" in response.text
        assert "set-cookie" not in response.headers
    with session_scope(engine) as s:
        ada = s.get(Subscriber, world.ada)
        assert ada.status == "unsubscribed" and ada.status_changed_at is not None
        assert [(x.email, x.reason, x.source) for x in s.scalars(select(Suppression))] == [
            ("ada@example.com", "unsubscribed", "one_click")
        ]
        assert s.get(Delivery, world.d_ada_queued).status == "suppressed"
    [event] = stored(engine, "unsubscribe")
    assert event.data == {"source": "one_click"} and event.ip_prefix == "203.0.113.0/24"
    assert "already unsubscribed" in client.get(url).text
    assert (
        client.post(
            f"/u/{tamper(token(world.d_ada))}", content=b"List-Unsubscribe=One-Click", headers=headers
        ).status_code
        == 404
    )


def test_confirm_form_post_and_multipart_one_click(client, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    assert client.post(f"/u/{token(world.d_ada)}", data={"confirm": "yes"}).status_code == 200
    response = client.post(f"/u/{token(world.d_bob)}", files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    with session_scope(engine) as s:
        assert dict(s.execute(select(Suppression.email, Suppression.source)).all()) == {
            "ada@example.com": "link",
            "bob@example.com": "one_click",
        }


def test_post_body_is_capped(client, world, token) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        f"/u/{token(world.d_ada)}",
        content=b"x" * (65 * 1024),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413 and "Too much data" in response.text


# --- preferences -----------------------------------------------------------------------------


def test_preferences_page_and_save(client, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    url = f"/p/{token(world.d_ada)}"
    page = client.get(url)
    assert page.status_code == 200 and 'value="Ada"' in page.text and "a***@example.com" in page.text
    for tag in ("ketamine", "depression", "anxiety", "ptsd", "mindfulness", "family"):
        assert f'name="interest" value="{tag}"' in page.text
    assert '<label for="first_name">' in page.text and "<legend>" in page.text
    saved = client.post(url, data={"first_name": " Ada  L. ", "interest": ["anxiety", "family"], "action": "save"})
    assert saved.status_code == 200 and "Your preferences are saved." in saved.text
    assert 'value="anxiety" checked' in saved.text and 'value="ketamine" checked' not in saved.text
    with session_scope(engine) as s:
        ada = s.get(Subscriber, world.ada)
        assert ada.first_name == "Ada L." and sorted(t.tag for t in ada.tags) == ["anxiety", "family", "vip"]
    bad = client.post(url, data={"first_name": "Ada", "interest": ["vip"]})
    assert bad.status_code == 400 and "Please choose interests from the list." in bad.text
    assert client.post(url, json={"first_name": "X"}).status_code == 415
    assert client.post(url, data={"first_name": "X"}, headers={"origin": "https://evil.example"}).status_code == 403
    assert client.post(url, data={"first_name": "X"}, headers={"origin": PUBLIC}).status_code == 200
    assert client.get(f"/p/{tamper(token(world.d_ada))}").status_code == 404


def test_preferences_unsubscribe_button(client, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    response = client.post(f"/p/{token(world.d_bob)}", data={"first_name": "Bob", "action": "unsubscribe"})
    assert response.status_code == 200 and "unsubscribed" in response.text
    with session_scope(engine) as s:
        assert s.get(Subscriber, world.bob).status == "unsubscribed"
        assert s.scalar(select(Suppression.source)) == "preferences"
    assert "You are unsubscribed" in client.get(f"/p/{token(world.d_bob)}").text


# --- web version and article -----------------------------------------------------------------


def test_web_version_is_personalised_and_not_an_open(client, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    tok = token(world.d_bob)
    response = client.get(f"/w/{tok}")
    assert response.status_code == 200
    assert "Hi &lt;Bob&gt;," in response.text and "<Bob>" not in response.text
    assert f'href="{PUBLIC}/c/{tok}/1"' in response.text and f"{PUBLIC}/u/{tok}" in response.text
    assert "/o/" not in response.text and "%%" not in response.text
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert stored(engine) == []
    assert client.get(f"/w/{tamper(tok)}").status_code == 404


def test_article_page(client, world) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/a/ketamine")
    assert response.status_code == 200
    page = response.text
    assert '<html lang="en">' in page and "<h1>Ketamine-assisted psychotherapy: what to expect</h1>" in page
    assert "An <em>opening</em> paragraph." in page and "You arrive &amp; settle in." in page
    assert "<h2>How a session goes</h2>" in page and "April 2, 2024" in page
    assert f'<a class="button" href="{BOOKING}">Connect today</a>' in page
    assert client.get("/a/no-such-article").status_code == 404


# --- plumbing --------------------------------------------------------------------------------


def test_health_and_error_pages(settings, engine, world) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(create_app(settings, engine))
    assert client.get("/healthz").text == "ok"
    response = client.delete("/healthz")
    assert response.status_code == 405 and "<h1>Not allowed</h1>" in response.text
    empty = make_engine(f"sqlite:///{Path(settings.outbox_dir).parent / 'empty.db'}")  # no tables: every query fails
    broken = TestClient(create_app(settings, empty), raise_server_exceptions=False)
    response = broken.get("/a/ketamine")
    assert response.status_code == 500 and "Something went wrong" in response.text
    assert "Traceback" not in response.text and "OperationalError" not in response.text
    assert broken.get("/o/whatever.gif").content.startswith(b"GIF89a")
    assert broken.get(f"/o/{TokenSigner(settings.signing_key()).sign(1)}.gif").status_code == 200
    click = broken.get(f"/c/{TokenSigner(settings.signing_key()).sign(1)}/1", follow_redirects=False)
    assert click.status_code == 500 and "Something went wrong" in click.text and "location" not in click.headers
    assert click.headers["x-content-type-options"] == "nosniff"
    empty.dispose()


def write_eml(folder: Path, delivery_id: int, to: str, html: str) -> None:
    message = EmailMessage()
    message["From"] = "Roots Mental Wellness <newsletter@rootsmentalwellness.example>"
    message["To"] = to
    message["Subject"] = "April at Roots"
    message.set_content("Hi there")
    message.add_alternative(html, subtype="html")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{delivery_id}.eml").write_bytes(bytes(message))


def test_outbox_viewer(client, settings, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    remote = client  # a browser on another machine never sees the outbox (it holds personal data)
    assert remote.get(f"/outbox/{world.campaign_id}").status_code == 404
    assert "outbox" not in remote.get("/").text.lower()
    client = TestClient(
        create_app(settings, engine),
        client=("127.0.0.1", 50123),
        headers={"user-agent": BROWSER},
        follow_redirects=False,
        base_url="http://127.0.0.1:8000",
    )  # a browser names the server
    folder = Path(settings.outbox_dir) / f"campaign-{world.campaign_id}"
    write_eml(
        folder,
        world.d_ada,
        "Ada Lovelace <ada@example.com>",
        f'<html><head><title>x</title></head><body><a href="{PUBLIC}/c/{token(world.d_ada)}/1">Read</a></body></html>',
    )
    write_eml(folder, world.d_bob, "bob@example.com", "<p>Hi Bob</p>")
    (folder / "notes.txt").write_text("not a message")
    index = client.get("/")
    assert index.status_code == 200 and f'href="/outbox/{world.campaign_id}"' in index.text
    assert (
        ">April</td>" not in index.text and "April</a>" in index.text and '<td data-label="Sent">2</td>' in index.text
    )
    listing = client.get(f"/outbox/{world.campaign_id}")
    assert listing.status_code == 200 and "2 messages" in listing.text
    assert (
        '<td data-label="First name">Ada</td>' in listing.text
        and "a***@example.com" in listing.text
        and "b***@example.com" in listing.text
    )
    assert "ada@example.com" not in listing.text
    assert f'href="/outbox/{world.campaign_id}/{world.d_ada}"' in listing.text
    message = client.get(f"/outbox/{world.campaign_id}/{world.d_ada}")
    assert message.status_code == 200 and "<iframe" in message.text and 'sandbox="' in message.text
    frame = f"/outbox/{world.campaign_id}/{world.d_ada}/html"
    assert f'src="{frame}"' in message.text
    email_html = client.get(frame)
    assert email_html.status_code == 200 and email_html.headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in email_html.headers["content-security-policy"]
    assert "script-src" not in email_html.headers["content-security-policy"]  # default-src 'none' forbids scripts
    assert f"{PUBLIC}/c/{token(world.d_ada)}/1" in email_html.text and '<base target="_blank">' in email_html.text
    assert remote.get(frame).status_code == 404
    assert client.get(f"/outbox/{world.campaign_id}/999999").status_code == 404
    assert "No messages" in client.get("/outbox/424242").text

    sendgrid = TestClient(create_app(settings.with_overrides(sendgrid_api_key="SG.x"), engine))
    assert "The newsletter is running" in sendgrid.get("/").text
    assert sendgrid.get(f"/outbox/{world.campaign_id}").status_code == 404


def raw_get(base: str, path: str, host: str | None) -> tuple[int, dict[str, str], str]:
    """A GET with exactly the ``Host`` given (as ``curl -H 'Host: …'`` sends it), to a real server."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(base)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        conn.close()


FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:8000",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "evil.example@127.0.0.1",
    "127.0.0.1 evil.example",
    "127.0.0.1,evil.example",
    "[::1]x",
    "",
]


def test_outbox_answers_only_for_loopback_and_public_host_names(settings, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    """DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 reads from 127.0.0.1 but
    names its own host. The outbox (names, masked addresses, live tokens) answered it 200."""
    folder = Path(settings.outbox_dir) / f"campaign-{world.campaign_id}"
    write_eml(
        folder,
        world.d_ada,
        "Ada Lovelace <ada@example.com>",
        f'<p><a href="{PUBLIC}/c/{token(world.d_ada)}/1">Read</a></p>',
    )
    pages = [
        f"/outbox/{world.campaign_id}",
        f"/outbox/{world.campaign_id}/{world.d_ada}",
        f"/outbox/{world.campaign_id}/{world.d_ada}/html",
        "/demo/booking",
    ]
    with _Server(create_app(settings, engine)) as base:
        port = base.rsplit(":", 1)[1]
        for host in FOREIGN_HOSTS + [None]:
            for path in pages:
                status, _, body = raw_get(base, path, host)
                assert status in (400, 404), (host, path, status)
                assert token(world.d_ada) not in body and "a***@example.com" not in body
            status, _, body = raw_get(base, "/", host)
            assert "Outbox" not in body and "April" not in body, host
        for host in [
            f"127.0.0.1:{port}",
            "localhost",
            f"LOCALHOST:{port}",
            "[::1]:8000",
            "localhost.",
            "news.example.test",
            "News.Example.Test:443",
        ]:
            for path in pages:
                assert raw_get(base, path, host)[0] == 200, (host, path)
            assert "April" in raw_get(base, "/", host)[2]


def test_trailing_slash_redirect_is_relative_whatever_the_host(client, settings, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    """``/u/<tok>/`` redirected to ``http://<Host header>/u/<tok>``: with ``Host: evil.example``,
    to evil.example (a shared cache could keep that for everyone). Now a relative Location."""
    tok = token(world.d_ada)
    with _Server(create_app(settings, engine)) as base:
        for path, expected in [
            (f"/u/{tok}/", f"/u/{tok}"),
            (f"/p/{tok}/?a=1&b=%2F", f"/p/{tok}?a=1&b=%2F"),
            ("/healthz/", "/healthz"),
            (f"/w/{tok}//", f"/w/{tok}"),
            ("/a/x%3Fy/", "/a/x%3Fy"),
            ("/a/x%23y/", "/a/x%23y"),
        ]:
            status, headers, _ = raw_get(base, path, "evil.example")
            assert (status, headers.get("location")) == (307, expected), path
        for path in ["//evil.example/", "//evil.example", "/\\evil.example/", "/nothing/", "/%2F%2Fevil.example/"]:
            status, headers, _ = raw_get(base, path, "evil.example")
            assert status == 404 and "location" not in headers, path
    followed = TestClient(create_app(settings, engine), follow_redirects=True).get(
        f"/u/{tok}/", headers={"host": "evil.example"}
    )
    assert followed.status_code == 200 and "Unsubscribe" in followed.text


def test_host_names_are_parsed_strictly() -> None:
    from newsletter.web.hosts import host_is_trusted, host_name, trusted_hosts

    assert [host_name(h) for h in ("LocalHost:80", "[::1]", "[::1]:8000", "news.example.test.", "a_b.test")] == [
        "localhost",
        "::1",
        "::1",
        "news.example.test",
        "a_b.test",
    ]
    for bad in FOREIGN_HOSTS[4:] + [None, "x:", "x:123456", "[::1", ":80", "." * 300]:
        assert host_name(bad) is None or host_name(bad) not in trusted_hosts(PUBLIC), bad
    trusted = trusted_hosts("https://News.Example.Test:8443/path")
    assert trusted == {"127.0.0.1", "localhost", "::1", "news.example.test"}
    assert not host_is_trusted({"type": "http", "headers": []}, trusted)  # no Host at all
    assert host_is_trusted({"type": "http", "headers": [(b"host", b"news.example.test:8443")]}, trusted)


def add_ada_events(engine: Engine, world: World, key_prefix: str, kinds: list[tuple[str, bool]]) -> None:
    """Events on Ada's April delivery, all now: one per (type, by a machine), keyed prefix + index."""
    now = utcnow()
    with session_scope(engine) as s:
        s.add_all(
            [
                Event(
                    event_key=f"{key_prefix}{i}",
                    type=kind,
                    delivery_id=world.d_ada,
                    campaign_id=world.campaign_id,
                    is_machine=machine,
                    occurred_at=now,
                )
                for i, (kind, machine) in enumerate(kinds)
            ]
        )


def big_outbox(settings: Settings, engine: Engine, world: World, n: int = 300) -> TestClient:
    """``n`` messages in campaign April's outbox: Ada's and Bob's deliveries first, then made-up
    ids; Ada's opened by a person and clicked only by a scanner; a local browser's client."""
    folder = Path(settings.outbox_dir) / f"campaign-{world.campaign_id}"
    write_eml(folder, world.d_ada, "Ada Lovelace <ada@example.com>", "<p>Hi Ada</p>")
    write_eml(folder, world.d_bob, "bob@example.com", "<p>Hi Bob</p>")
    for i in range(n - 2):
        write_eml(folder, 100_000 + i, f"Reader {i} <reader{i}@example.com>", "<p>Hi</p>")
    add_ada_events(engine, world, "k", [("open", False), ("open", False), ("open", True), ("click", True)])
    return TestClient(
        create_app(settings, engine),
        client=("127.0.0.1", 50123),
        follow_redirects=False,
        base_url="http://127.0.0.1:8000",
    )


def test_outbox_pages_its_messages_and_shows_opens_and_clicks(settings, engine, world) -> None:  # type: ignore[no-untyped-def]
    """300 messages were one 20,000-pixel page without a word about who opened what."""
    import re

    client = big_outbox(settings, engine, world)
    first = client.get(f"/outbox/{world.campaign_id}")
    assert first.status_code == 200
    assert "300 messages, 1–50 shown (page 1 of 6)" in first.text
    assert first.text.count('<tr><td data-label="Delivery">') == 50 and f">{world.d_ada}</a>" in first.text
    assert "← Previous" not in first.text and f'href="/outbox/{world.campaign_id}?page=2" rel="next"' in first.text
    ada_row = next(
        line for line in first.text.splitlines() if f'href="/outbox/{world.campaign_id}/{world.d_ada}"' in line
    )
    assert re.search(
        r"<td data-label=\"Opened\" class=\"state\">yes \(2×\)</td><td data-label=\"Clicked\" class=\"state machine\">machine only</td></tr>$",
        ada_row,
    )
    bob_row = next(
        line for line in first.text.splitlines() if f'href="/outbox/{world.campaign_id}/{world.d_bob}"' in line
    )
    assert bob_row.endswith(
        '<td data-label="Opened" class="state">no</td><td data-label="Clicked" class="state">no</td></tr>'
    )
    # every link carries a page number at most: nothing personal in a URL
    for href in re.findall(r'href="([^"]+)"', first.text):
        assert re.fullmatch(r"/|/outbox/\d+(/\d+)?(\?page=\d+)?|https?://[^?]*", href), href
    last = client.get(f"/outbox/{world.campaign_id}?page=6")
    assert "251–300 shown (page 6 of 6)" in last.text and last.text.count('<tr><td data-label="Delivery">') == 50
    assert 'rel="prev"' in last.text and 'rel="next"' not in last.text
    middle = client.get(f"/outbox/{world.campaign_id}?page=3")
    assert '<span aria-current="page">3</span>' in middle.text and "101–150 shown (page 3 of 6)" in middle.text
    assert client.get(f"/outbox/{world.campaign_id}?page=99").text.count("page 6 of 6") == 1  # past the end: the last
    for bad in ("0", "-1", "abc", "1.5", "9" * 12, "", "%00", "1&page=2"):
        response = client.get(f"/outbox/{world.campaign_id}?page={bad}")
        assert response.status_code == 400, bad
    message = client.get(f"/outbox/{world.campaign_id}/{world.d_ada}")
    assert "Opened: yes (2×); clicked: machine only." in message.text


def test_outbox_page_links_skip_the_far_pages() -> None:
    from newsletter.web.outbox import OutboxPage

    assert OutboxPage(1, 1, 3).links() == [1]
    assert OutboxPage(1, 6, 300).links() == [1, 2, 3, None, 6]
    assert OutboxPage(10, 20, 1000).links() == [1, None, 8, 9, 10, 11, 12, None, 20]
    assert OutboxPage(4, 6, 300).links() == [1, 2, 3, 4, 5, 6]


def test_hostile_requests_answer_4xx_never_500(settings, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    """What probing the routes found answering 500: an Origin that is no URL ("http://["), a NUL
    in an article slug (PostgreSQL refuses it as a parameter), outbox ids past BIGINT and files in
    the outbox folder named like numbers that are not ("².eml"); with the other odd requests
    tried (bad methods, malformed tokens and forms, long query strings), all now 4xx."""
    tok = token(world.d_ada)
    folder = Path(settings.outbox_dir) / f"campaign-{world.campaign_id}"
    write_eml(folder, world.d_ada, "Ada <ada@example.com>", "<p>x</p>")
    for odd in ("².eml", "99999999999999999999999.eml", "9223372036854775808.eml"):
        (folder / odd).write_text("not a message")
    client = TestClient(
        create_app(settings, engine),
        raise_server_exceptions=False,
        follow_redirects=False,
        client=("127.0.0.1", 5),
        base_url="http://127.0.0.1:8000",
        headers={"user-agent": BROWSER},
    )
    form = {"content-type": "application/x-www-form-urlencoded"}
    huge = "99999999999999999999999"
    requests: list[tuple[str, str, dict[str, str], bytes | None]] = [
        ("GET", path, {}, None)
        for path in (
            "/a/%00",
            "/a/x%00y",
            "/a/" + "é" * 300,
            "/o/%00.gif",
            f"/c/{tok}/{huge}",
            "/c/%00/1",
            "/u/%00",
            "/p/%00",
            "/w/%00",
            "/continue/%00",
            "/continue/" + "A" * 500,
            f"/continue/{tok}",
            f"/outbox/{huge}",
            f"/outbox/{world.campaign_id}/{huge}",
            f"/outbox/{world.campaign_id}/{huge}/html",
            f"/outbox/{world.campaign_id}?page=" + "9" * 5000,
            f"/u/{tok}?" + "x=1&" * 3000,
            "/a/%ff%fe",
            "/" + "a/" * 3000,
        )
    ]
    requests += [
        (method, path, {}, None)
        for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW")
        for path in (
            "/",
            f"/u/{tok}",
            f"/p/{tok}",
            "/webhooks/sendgrid",
            f"/o/{tok}.gif",
            f"/c/{tok}/1",
            "/continue/x",
            f"/outbox/{world.campaign_id}",
        )
    ]
    for path in (f"/u/{tok}", f"/p/{tok}"):
        requests += [
            ("POST", path, headers, body)
            for headers, body in [
                (form, b"\xff\xfe"),
                (form, b"first_name=%ff%fe"),
                (form, b"&".join([b"interest=a"] * 5000)),
                ({"content-type": "multipart/form-data; boundary=zz"}, b"x"),
                ({"content-type": "multipart/form-data"}, b"x"),
                ({"content-type": "text/plain"}, b"x"),
                ({"content-type": ""}, b""),
                ({**form, "origin": "http://["}, b"List-Unsubscribe=One-Click"),
                ({**form, "origin": "http://[::1"}, b"action=unsubscribe"),
                ({**form, "origin": "http://x:99999999"}, b"action=save"),
            ]
        ]
    requests += [("POST", "/continue/x", form, body) for body in (b"x", b"[" * 10000, b"\x00")]
    failures = []
    for method, path, headers, body in requests:
        status = client.request(method, path, headers=headers, content=body).status_code
        if not 200 <= status < 500:
            failures.append((method, path[:60], headers.get("origin"), status))
    assert failures == []
    listing = client.get(f"/outbox/{world.campaign_id}")
    assert "1 message." in listing.text  # the odd files are not listed as messages


# --- a real browser --------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


class _Server:
    """The app under uvicorn in a thread, on 127.0.0.1 and a free port."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


#: Chromium browsing our own local server (the preflight's flags block every host name).
_HEADLESS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)
_BROWSE_FLAGS = (*_HEADLESS, "--window-size=1000,1300")


class _DevTools(Browser):
    """The preflight's DevTools client (``--remote-debugging-pipe``), with the network and the
    page's scripts on: the tests click through real pages served by uvicorn."""

    def __init__(self, chromium: str) -> None:
        super().__init__(chromium, flags=_BROWSE_FLAGS)

    def open(self, url: str) -> None:
        self.open_page(offline=False)
        self.goto(url)

    def evaluate(self, expression: str) -> Any:
        """None while a navigation leaves no document to ask (``wait_for`` polls until there is one)."""
        try:
            return super().evaluate(expression)
        except BrowserError:
            return None

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for(
            lambda: self.evaluate("location.href") == url and self.evaluate("document.readyState") == "complete"
        )

    def click(self, selector: str, *, scroll: bool = False) -> None:
        """A person's left click (press, release) at the middle of the first element ``selector``
        finds, scrolled into view first if ``scroll``: the browser's own events, not element.click()."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector('{selector}');"
            + (" e.scrollIntoView();" if scroll else "")
            + " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def wait_for(self, condition: Callable[[], object], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("page did not get there")
            time.sleep(0.05)


@pytest.mark.slow
def test_real_chromium_unsubscribe_and_preferences(settings, engine, world, token, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        pytest.skip("headless Chromium not found: install Debian package chromium")
    app = create_app(settings, engine)
    with _Server(app) as base:
        # 1. The confirm page as Chromium renders it (--dump-dom).
        url = f"{base}/u/{token(world.d_ada)}"
        dom = subprocess.run(
            [
                CHROMIUM,
                *_HEADLESS,
                f"--user-data-dir={tmp_path / 'profile-a'}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert '<form method="post">' in dom and '<button type="submit">Unsubscribe</button>' in dom
        assert "a***@example.com" in dom

        # 2. Click the button for real (DevTools protocol): the browser's own form POST, with its
        #    Origin header and our CSP, lands on "You're unsubscribed" without a redirect.
        tools = _DevTools(CHROMIUM)
        try:
            tools.open(url)
            tools.click("button")
            tools.wait_for(
                lambda: (
                    tools.evaluate("document.querySelector('h1') && document.querySelector('h1').textContent")
                    == "You're unsubscribed"
                )
            )
            assert tools.evaluate("location.href") == url

            # 3. The preferences page: tick a topic, rename, save; then a screenshot to look at.
            prefs = f"{base}/p/{token(world.d_bob)}"
            tools.goto(prefs)
            tools.evaluate(
                "document.getElementById('interest-mindfulness').click();"
                "document.getElementById('first_name').value = 'Robert'"
            )
            tools.click("button[value=save]")
            tools.wait_for(lambda: "Your preferences are saved." in (tools.evaluate("document.body.innerText") or ""))
            shot = tools.call("Page.captureScreenshot", format="png")["data"]
        finally:
            tools.close()
    import base64

    path = tmp_path / "preferences.png"
    path.write_bytes(base64.b64decode(shot))
    print(f"preferences screenshot: {path}")
    assert path.stat().st_size > 10_000
    with session_scope(engine) as s:
        assert s.get(Subscriber, world.ada).status == "unsubscribed"
        bob = s.get(Subscriber, world.bob)
        assert bob.first_name == "Robert" and [t.tag for t in bob.tags] == ["mindfulness"]
        assert s.scalar(select(Suppression.source)) == "link"


# --- the fast path for the pixel and the redirect (same answers as the router) ---------------------


def test_fast_path_edges_answer_like_the_router(client, engine, world, token) -> None:  # type: ignore[no-untyped-def]
    tok = token(world.d_ada)
    with session_scope(engine) as s:
        s.add(CampaignLink(campaign_id=world.campaign_id, position=3, url="javascript:alert(1)", kind="article"))
    response = client.get(f"/c/{tok}/3")  # registered, but not a scheme we ever redirect to
    assert response.status_code == 404 and "location" not in response.headers and "Page not found" in response.text
    for path in (
        f"/o/{tok}/x.gif",
        "/o/.gif",
        f"/c/{tok}/",
        f"/c/{tok}/1/2",
        f"/c/{tok}/-1",
        f"/c/{tok}/١",
        f"/c//{1}",
        "/c/" + "x" * 300 + "/1",
    ):
        assert client.get(path).status_code == 404, path
    pixel = client.get(f"/o/{tok}.gif?utm=1")
    assert pixel.status_code == 200 and pixel.headers["x-content-type-options"] == "nosniff"
    assert pixel.headers["content-security-policy"].startswith("default-src 'none'")
    assert client.head(f"/c/{tok}/1").headers["location"] == ARTICLE_URL
    odd = "https://example.test/a b/ü?q=x y&r=é#frag"
    with session_scope(engine) as s:
        s.add(CampaignLink(campaign_id=world.campaign_id, position=4, url=odd, kind="article"))
    from starlette.responses import RedirectResponse

    assert client.get(f"/c/{tok}/4").headers["location"] == RedirectResponse(odd).headers["location"]
    kinds = [(e.type, e.link_id is not None) for e in stored(engine)]
    assert kinds == [("click", True), ("open", False), ("click", True), ("click", True)]  # javascript: kept, as before


@pytest.fixture
def outbox_in_chromium(settings, engine, world) -> Iterator[tuple[str, _DevTools]]:  # type: ignore[no-untyped-def]
    """(the server's base URL, a headless Chromium) with a 300-message outbox to look at."""
    if CHROMIUM is None:
        pytest.skip("headless Chromium not found: install Debian package chromium")
    big_outbox(settings, engine, world)
    with _Server(create_app(settings, engine)) as base:
        tools = _DevTools(CHROMIUM)
        try:
            yield base, tools
        finally:
            tools.close()


@pytest.mark.slow
def test_real_chromium_outbox_page_is_short_and_pages_on(outbox_in_chromium, world) -> None:  # type: ignore[no-untyped-def]
    """As a browser lays it out: the outbox of 300 messages was about 20,000 pixels tall."""
    base, tools = outbox_in_chromium
    tools.open(f"{base}/outbox/{world.campaign_id}")
    height = tools.evaluate("document.documentElement.scrollHeight")
    rows = tools.evaluate("document.querySelectorAll('tbody tr').length")
    tools.click("a[rel=next]", scroll=True)
    tools.wait_for(
        lambda: tools.evaluate("location.search") == "?page=2" and tools.evaluate("document.readyState") == "complete"
    )
    second = tools.evaluate("document.querySelector('main p.muted').textContent")
    print(f"outbox page 1 of 6: {rows} rows, {height} px tall")
    assert rows == 50
    assert height < 6000, height  # 50 rows; the whole campaign on one page was about 20,000
    assert "51–100 shown (page 2 of 6)" in second


@pytest.mark.slow
def test_real_chromium_outbox_pages_do_not_scroll_sideways_on_a_phone(outbox_in_chromium, world) -> None:  # type: ignore[no-untyped-def]
    """At 375 px the message table had six columns running off the screen (email, subject,
    opened and clicked out of view): on a phone each row is a block of labelled lines."""
    base, tools = outbox_in_chromium
    tools.open("about:blank")  # the page's own session, where the phone's screen is set
    tools.call("Emulation.setDeviceMetricsOverride", width=375, height=800, deviceScaleFactor=1, mobile=True)
    widths = {}
    for path in ("/", f"/outbox/{world.campaign_id}"):
        tools.goto(f"{base}{path}")
        widths[path] = tools.evaluate(
            "[document.documentElement.scrollWidth, Math.max(...Array.from("
            "document.querySelectorAll('tbody td'), e => e.getBoundingClientRect().right))]"
        )
    label = tools.evaluate("getComputedStyle(document.querySelector('tbody td'), '::before').content")
    for path, (scroll, right) in widths.items():
        assert scroll <= 375 and right <= 375, f"{path}: {scroll} px wide, a cell ends at {right} px, on a 375 px phone"
    assert label == '"Delivery: "'


# --- the faces the web app reads (issue 15: web calls rooms' faces only) ----------------------


def test_campaigns_pages_face_returns_plain_values(engine, world) -> None:  # type: ignore[no-untyped-def]
    """What the public pages and the outbox's home read, as plain dataclasses (no ORM rows), the
    same values the web app's own queries gave: a web version's HTML and first name (``None`` for
    no such delivery), an article's content by slug, every campaign with its sent count."""
    from dataclasses import asdict

    from newsletter.campaigns import (
        CampaignSent,
        WebVersion,
        article_content,
        campaigns_sent,
        web_version_of,
    )

    with session_scope(engine) as s:
        version = web_version_of(s, world.d_bob)
        missing = web_version_of(s, 999_999)
        content = article_content(s, "ketamine")
        no_article = article_content(s, "no-such-slug")
        listed = campaigns_sent(s)
    assert version == WebVersion(CAMPAIGN_HTML, "<Bob>") and missing is None
    assert content is not None and ArticleContent.from_dict(content).title.startswith("Ketamine-assisted")
    assert no_article is None
    may_id = listed[0].id
    assert listed == [
        CampaignSent(may_id, "May", "May", "sending", 0),
        CampaignSent(world.campaign_id, "April", "Hello %%first_name%%", "sent", 2),
    ]
    assert not any(hasattr(v, "_sa_instance_state") for row in listed for v in asdict(row).values())


def test_tracking_engagement_face_counts_people_and_machines_apart(engine, world) -> None:  # type: ignore[no-untyped-def]
    """``tracking.engagement``: per delivery, opens and clicks by people and by machines; a
    delivery with none is absent, and no ids asks nothing."""
    from newsletter.tracking import Engagement, engagement

    add_ada_events(
        engine, world, "e", [("open", False), ("open", False), ("open", True), ("click", True), ("delivered", False)]
    )
    with session_scope(engine) as s:
        counts = engagement(s, [world.d_ada, world.d_bob, world.d_ada])
        assert engagement(s, []) == {}
    assert counts == {world.d_ada: Engagement(opens=2, machine_opens=1, machine_clicks=1)}
    assert (counts[world.d_ada].opened, counts[world.d_ada].clicked) == ("yes (2×)", "machine only")
