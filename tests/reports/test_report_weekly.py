"""The director's weekly email: last week's figures (the trends report's), Gmail-safe HTML (table
layout, inline styles, PNG charts as ``cid:`` images), a text part, and once per week."""

from __future__ import annotations

import base64
import io
import re
from datetime import datetime, timedelta, timezone

import pytest
from PIL import Image
from test_reports import World, build_report_world, trends_of

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.preflight.chromium import Browser, find_chromium
from newsletter.reports import weekly_report_email
from newsletter.reports.weekly import notification_key, reported_week

UTC = timezone.utc
MONDAY = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # the report of week 48 (23–29 Nov)
CHROMIUM = find_chromium()
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def world(engine) -> World:  # type: ignore[no-untyped-def]
    return build_report_world(engine)


@pytest.fixture
def email(engine, world, settings):  # type: ignore[no-untyped-def]
    return weekly_report_email(engine, settings, MONDAY)


def test_the_reported_week_is_the_one_that_just_ended() -> None:
    assert reported_week(MONDAY, "UTC") == (2026, 48)
    assert notification_key(MONDAY, "UTC") == "weekly-report:2026-W48"
    # Monday 07:00 UTC is still Sunday evening in Los Angeles: the week that ended there is 47.
    assert notification_key(datetime(2026, 11, 30, 7, tzinfo=UTC), "America/Los_Angeles") == "weekly-report:2026-W47"
    assert notification_key(datetime(2027, 1, 4, 9, tzinfo=UTC), "UTC") == "weekly-report:2026-W53"


def test_subject_and_figures_are_last_weeks(email, engine) -> None:  # type: ignore[no-untyped-def]
    subject, html, text, images = email
    assert subject == "Roots Mental Wellness weekly report 2026-W48: 1 newsletter, 1 new lead, 0 booked"
    week = trends_of(engine, weeks=12, now=MONDAY, include_current=False)["weeks"][-1]
    assert week["week"] == "2026-W48" and week["funnel"]["opened"] == 2
    assert "Subject B" in html and "Subject B" in text and "Subject A" not in text.split("12 weeks")[0]
    assert "2 opened (50.0%)" in text and '1 "Connect today" (25.0%)' in text
    assert "1 new, 1 unsubscribed, 0 bounced, 1 complained, net -1; 6 active" in text
    assert "Opened -30.0 pts vs the week before" in text  # 50 % against week 47's 80 %
    assert re.search(r">\s*50\.0%\s*<", html) and re.search(r">\s*25\.0%\s*<", html)


def test_html_is_gmail_safe(email) -> None:  # type: ignore[no-untyped-def]
    subject, html, text, images = email
    lowered = html.lower()
    for forbidden in ("<style", "<script", "<link", "<svg", "class=", "@media", "http://", "https://"):
        assert forbidden not in lowered, forbidden
    assert 'role="presentation"' in html and 'width="600"' in html
    assert len(html.encode()) < 100_000  # Gmail clips messages over about 102 KB
    used = re.findall(r'<img src="cid:([^"]+)"', html)
    assert sorted(used) == sorted(images) == ["report-funnel", "report-growth", "report-trend"]
    for tag in re.findall(r"<img [^>]+>", html):
        assert 'alt="' in tag and "style=" in tag and 'width="560"' in tag
    for name, png in images.items():
        assert png.startswith(PNG), name
        assert Image.open(io.BytesIO(png)).width >= 560 * 1.4  # sharp on a phone's screen
    for tag in re.findall(r"<(?:td|div|span|table)\b[^>]*>", html):
        assert "style=" in tag or "role=" in tag or tag in ("<td>",), tag


def test_a_week_without_a_newsletter(engine, world, settings) -> None:  # type: ignore[no-untyped-def]
    subject, html, text, images = weekly_report_email(engine, settings, MONDAY + timedelta(weeks=1))
    assert "no newsletter" in subject and "No newsletter went out last week." in text
    assert set(images) == {"report-trend", "report-growth"} and "cid:report-funnel" not in html


def test_a_fresh_install_gets_words_not_empty_charts(engine, settings) -> None:  # type: ignore[no-untyped-def]
    """No newsletter and no subscriber yet: no chart of nothing (an empty plot, axes of 0–0.05)."""
    _, html, text, images = weekly_report_email(engine, settings, MONDAY)
    assert images == {} and "cid:" not in html and "<img" not in html
    assert "No newsletter went out in these weeks, so no engagement yet." in html
    assert "No one joined or left the list in these 12 weeks." in html
    assert "none yet" in text.split('by "Connect today" rate:')[1]


def test_works_with_a_session_too(engine, world, settings, email) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        again = weekly_report_email(session, settings, MONDAY)
    assert again[:3] == email[:3]


def test_time_zone_moves_the_week(engine, world, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(database_url=db_url, default_timezone="America/Los_Angeles", outbox_dir=str(tmp_path))
    subject, *_ = weekly_report_email(engine, settings, datetime(2026, 11, 30, 7, tzinfo=UTC))
    assert "2026-W47" in subject and "1 newsletter, 2 new leads, 2 booked" in subject


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not found: install Debian package chromium")
def test_renders_on_a_phone_with_its_images(email) -> None:  # type: ignore[no-untyped-def]
    """The cid: images resolved (as a mail client does), in a 375-pixel-wide window: every image
    loads and fits, nothing scrolls sideways."""
    subject, html, text, images = email
    for cid, png in images.items():
        html = html.replace(f"cid:{cid}", "data:image/png;base64," + base64.b64encode(png).decode())
    with Browser(CHROMIUM) as browser:
        browser.set_viewport(375, 800)
        browser.load_html(html)
        state = browser.evaluate("""(() => ({
            images: [...document.images].map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width]),
            scroll: document.scrollingElement.scrollWidth}))()""")
    assert len(state["images"]) == 3
    for complete, natural, shown in state["images"]:
        assert complete and natural > 0 and 300 < shown <= 375
    assert state["scroll"] <= 375


# --------------------------------------------------------------------------- sending, once a week


def test_send_weekly_report_once_per_week_to_the_director(engine, world, settings) -> None:  # type: ignore[no-untyped-def]
    import email
    from email import policy

    from newsletter.notify import notification_status, outbox_path
    from newsletter.reports import send_weekly_report

    settings = settings.with_overrides(director_email="director@clinic.example")
    assert send_weekly_report(engine, settings, MONDAY) is True
    assert send_weekly_report(engine, settings, datetime(2026, 12, 2, 9, tzinfo=UTC)) is False  # same week, later
    assert notification_status(engine, "weekly-report:2026-W48") == "sent"
    message = email.message_from_bytes(
        outbox_path(settings, "weekly-report:2026-W48").read_bytes(), policy=policy.default
    )
    assert message["To"] == "director@clinic.example" and "2026-W48" in message["Subject"]
    html = message.get_body(("html",)).get_content()
    cids = {part["Content-ID"].strip("<>") for part in message.walk() if part.get_content_type() == "image/png"}
    assert cids == set(re.findall(r'src="cid:([^"]+)"', html)) == {"report-funnel", "report-trend", "report-growth"}
    assert "2 opened (50.0%)" in message.get_body(("plain",)).get_content()
    # The next week nothing happened in this world: no mail, the week settled as skipped.
    assert send_weekly_report(engine, settings, datetime(2026, 12, 7, 8, tzinfo=UTC)) is False
    assert notification_status(engine, "weekly-report:2026-W49") == "skipped"


def test_send_weekly_report_through_sendgrid(engine, world, settings, fake_sendgrid) -> None:  # type: ignore[no-untyped-def]
    from newsletter.notify import StaffMailError
    from newsletter.reports import send_weekly_report

    settings = settings.with_overrides(
        sendgrid_api_key=fake_sendgrid.api_key,
        sendgrid_host=fake_sendgrid.url,
        sendgrid_timeout=5.0,
        director_email="director@clinic.example",
    )
    fake_sendgrid.plan(("status", 503))
    with pytest.raises(StaffMailError):
        send_weekly_report(engine, settings, MONDAY)
    assert send_weekly_report(engine, settings, MONDAY) is True  # a failure is retried by the next call
    assert send_weekly_report(engine, settings, MONDAY) is False
    [received] = fake_sendgrid.inbox("director@clinic.example")
    [body] = [b for b in fake_sendgrid.bodies() if b and b.get("attachments")]
    assert {a["content_id"] for a in body["attachments"]} == {"report-funnel", "report-trend", "report-growth"}
    assert all(a["disposition"] == "inline" for a in body["attachments"])
    assert "2026-W48" in body["subject"]
