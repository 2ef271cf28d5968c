"""The hidden honeypot link: in every campaign email's HTML, registered as kind ``honeypot``,
absent from the text part, invisible to people, screen readers and the keyboard in a real
Chromium, and a click on it (through the redirect or SendGrid's webhook) is a machine's with
reason ``honeypot`` and never a lead. Store tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import re
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from factories import add_subscribers, roots_brand
from newsletter.campaigns import create_campaign, import_article, send_campaign
from newsletter.content import load_article
from newsletter.db import session_scope
from newsletter.db.models import CampaignLink, Delivery, Event, Lead, utcnow
from newsletter.preflight import chromium
from newsletter.render import Brand, personalise, recipient_values, render_campaign
from newsletter.tracking import ingest_events
from newsletter.web import create_app
from repo_paths import REPO_DIR

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

PUBLIC = "https://news.example.test"
WEBSITE = "https://rootsmentalwellness.example"
BOOKING = "https://rootsmentalwellness.example/book"
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
BROWSER_HEADERS = {"user-agent": BROWSER, "accept-language": "en-US,en;q=0.9"}
CHROMIUM = chromium.find_chromium()
ANCHOR = re.compile(r"<a\b([^>]*)>(.*?)</a>", re.S)


def brand() -> Brand:
    return roots_brand()


@pytest.fixture(scope="module")
def seed():  # type: ignore[no-untyped-def]
    path = REPO_DIR / "articles" / "000-ketamine-assisted-psychotherapy.txt"
    return render_campaign(load_article(path), brand(), subject="Ketamine, explained", preheader="What to expect.")


def honeypot_anchor(html: str, position: int) -> tuple[str, str]:
    """(attributes, inner HTML) of the one anchor that points at tracked link ``position``."""
    found = [(attrs, inner) for attrs, inner in ANCHOR.findall(html) if re.search(rf'/c/[^/"]+/{position}"', attrs)]
    assert len(found) == 1, found
    return found[0]


def test_the_email_carries_one_hidden_honeypot(seed) -> None:  # type: ignore[no-untyped-def]
    [trap] = [link for link in seed.links if link.kind == "honeypot"]
    assert trap.url == WEBSITE and trap.position == len(seed.links)  # last: the reader's links keep theirs
    assert [link.kind for link in seed.links] == ["cta", "honeypot"]
    attrs, inner = honeypot_anchor(seed.html, trap.position)
    assert 'aria-hidden="true"' in attrs and 'tabindex="-1"' in attrs and "display:none" in attrs
    assert "title=" not in attrs and inner == ""  # nothing for a screen reader to announce
    wrapper = seed.html[: seed.html.index(f"/c/%%token%%/{trap.position}")].rsplit("<div", 1)[1]
    assert 'aria-hidden="true"' in wrapper and "display:none" in wrapper and "mso-hide:all" in wrapper
    tracked_in_text = {int(n) for n in re.findall(r"/c/%%token%%/(\d+)", seed.text)}
    assert trap.position not in tracked_in_text and tracked_in_text == {1}
    assert WEBSITE + "\n" not in seed.text and "Hidden link" not in seed.text and "Hidden link" not in seed.html


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not found: install Debian package chromium")
def test_chromium_shows_and_reads_nothing_of_it(seed) -> None:  # type: ignore[no-untyped-def]
    position = next(link.position for link in seed.links if link.kind == "honeypot")
    html = personalise(seed.html, recipient_values("Ada", "TOKEN123"))
    measure = r"""(() => {
      const one = href => {
        const a = [...document.querySelectorAll('a[href]')].find(x => x.getAttribute('href') === href);
        if (!a) return null;
        const r = a.getBoundingClientRect();
        let hidden = false;
        for (let e = a; e; e = e.parentElement) if (getComputedStyle(e).display === 'none') hidden = true;
        a.focus();
        return {w: r.width, h: r.height, rects: a.getClientRects().length, displayNone: hidden,
                focused: document.activeElement === a, tabIndex: a.tabIndex};
      };
      return {trap: one('%s/c/TOKEN123/%d'), cta: one('%s/c/TOKEN123/1'), text: document.body.innerText};
    })()""" % (PUBLIC, position, PUBLIC)  # noqa: UP031 - JavaScript full of braces: %-format keeps it readable
    with chromium.Browser(CHROMIUM) as browser:
        for width in (375, 600):
            browser.set_viewport(width, 900)
            browser.load_html(html)
            seen = browser.evaluate(measure)
            tree = browser.call("Accessibility.getFullAXTree")["nodes"]
    trap, cta = seen["trap"], seen["cta"]
    assert (trap["w"], trap["h"], trap["rects"], trap["displayNone"], trap["focused"], trap["tabIndex"]) == (
        0,
        0,
        0,
        True,
        False,
        -1,
    )
    assert cta["w"] > 0 and cta["h"] > 0 and not cta["displayNone"]  # the same probe sees a visible link
    assert "Connect today" in seen["text"] and "Hidden link" not in seen["text"]
    links = [node for node in tree if node.get("role", {}).get("value") == "link" and not node.get("ignored")]
    names = [node.get("name", {}).get("value", "") for node in links]
    urls = [prop["value"]["value"] for node in links for prop in node.get("properties", []) if prop["name"] == "url"]
    assert "Connect today" in names  # the screen reader hears the CTA ...
    assert not any(url.endswith(f"/c/TOKEN123/{position}") for url in urls)  # ... and never the honeypot
    assert any(url.endswith("/c/TOKEN123/1") for url in urls)


@pytest.fixture
def sent(engine, settings, seed_article_path):  # type: ignore[no-untyped-def]
    """The seed campaign sent to two readers through the outbox, two hours ago."""
    add_subscribers(engine, 2)
    with session_scope(engine) as s:
        slug = import_article(s, seed_article_path).row.slug
        campaign_id = create_campaign(s, settings, article_slug=slug, segment="all", subject="Hello").id
    assert send_campaign(engine, settings, campaign_id).sent == 2
    with session_scope(engine) as s:
        deliveries = list(s.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id).order_by(Delivery.id)))
        for d in deliveries:
            d.sent_at = utcnow() - timedelta(hours=2)
        links = {
            link.kind: link.position
            for link in s.scalars(select(CampaignLink).where(CampaignLink.campaign_id == campaign_id))
        }
        return campaign_id, [d.id for d in deliveries], links


def sent_html(settings, campaign_id: int, delivery_id: int) -> str:  # type: ignore[no-untyped-def]
    eml = Path(settings.outbox_dir) / f"campaign-{campaign_id}" / f"{delivery_id}.eml"
    message = email.message_from_bytes(eml.read_bytes())
    [html] = [
        part.get_payload(decode=True).decode() for part in message.walk() if part.get_content_type() == "text/html"
    ]
    return html


def test_a_click_on_the_honeypot_is_a_machine_and_no_lead(engine, settings, sent) -> None:  # type: ignore[no-untyped-def]
    campaign_id, (first, second), links = sent
    assert set(links) == {"cta", "honeypot"}
    client = TestClient(
        create_app(settings, engine), client=("203.0.113.77", 50123), headers=BROWSER_HEADERS, follow_redirects=False
    )
    for delivery_id, kind in ((first, "honeypot"), (second, "cta")):  # a browser-like click on each
        attrs, _ = honeypot_anchor(sent_html(settings, campaign_id, delivery_id), links[kind])
        url = re.search(r'href="([^"]+)"', attrs).group(1)  # type: ignore[union-attr]
        assert url.startswith(PUBLIC + "/c/")
        answer = client.get(url.removeprefix(PUBLIC))
        assert answer.status_code == 302 and answer.headers["location"] == (WEBSITE if kind == "honeypot" else BOOKING)
    with session_scope(engine) as s:
        clicks = {
            e.delivery_id: (e.is_machine, e.machine_reason)
            for e in s.scalars(select(Event).where(Event.type == "click"))
        }
        lead_subscribers = [lead.subscriber_id for lead in s.scalars(select(Lead))]
        second_subscriber = s.get(Delivery, second).subscriber_id
    assert clicks == {first: (True, "honeypot"), second: (False, None)}
    assert lead_subscribers == [second_subscriber]  # the person on the CTA is a lead; the trap made none


def test_sendgrids_report_of_a_honeypot_click_is_a_machine_too(engine, settings, sent) -> None:  # type: ignore[no-untyped-def]
    campaign_id, (first, _), links = sent
    click = {
        "event": "click",
        "sg_event_id": "hp-1",
        "delivery_id": str(first),
        "email": "reader0@example.com",
        "timestamp": int(utcnow().timestamp()),
        "useragent": BROWSER,
        "ip": "203.0.113.77",
        "url": f"{PUBLIC}/c/sometoken/{links['honeypot']}",
    }
    with session_scope(engine) as s:
        assert ingest_events(s, [click]).machine == 1
    with session_scope(engine) as s:
        [event] = s.scalars(select(Event).where(Event.type == "click"))
        assert (event.is_machine, event.machine_reason, event.campaign_id) == (True, "honeypot", campaign_id)
        assert s.scalars(select(Lead)).first() is None
