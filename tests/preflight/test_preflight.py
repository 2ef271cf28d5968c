"""Preflight: every check passes a good message and fails a broken one, the seed campaign passes
every check on both stores (SpamAssassin score at most 1.0), and a deliberately broken campaign
fails with four clear reasons.

Messages are real MIME built by ``delivery.build_mime`` from a campaign rendered by the real
templates, then broken one fault at a time. SpamAssassin (2–5 s a run) and Chromium (~1 s) are
run only where a test is about them; everything else uses ``check_message(..., only=...)``.
"""

from __future__ import annotations

import email
import io
import json
import re
import shutil
from collections.abc import Callable
from datetime import date, datetime, timezone
from email import policy
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path

import pytest

from factories import add_subscribers
from newsletter.campaigns import brand_from_settings, create_campaign, import_article
from newsletter.config import Settings
from newsletter.content import Article, CallToAction, Section, SignOff
from newsletter.db import models, session_scope
from newsletter.delivery import CampaignMessage, Recipient, build_mime
from newsletter.errors import UserError
from newsletter.preflight import (
    CHECK_NAMES,
    Check,
    CheckContext,
    PreflightReport,
    check_message,
    ensure_preflight_passes,
    preflight_command,
    run_preflight,
)
from newsletter.preflight import command as command_module
from newsletter.preflight import gate as gate_module
from newsletter.preflight import responsive as responsive_module
from newsletter.preflight import spam as spam_module
from newsletter.preflight.chromium import find_chromium
from newsletter.preflight.gate import forced_record
from newsletter.preflight.spam import parse_report
from newsletter.render import personalise, recipient_values, render_campaign
from newsletter.tracking.tokens import TokenSigner
from repo_paths import REPO_DIR, TESTS_DIR

FIXTURES = TESTS_DIR / "fixtures" / "preflight"
PUBLIC = "https://news.example.test"  # settings.public_url in conftest
SPAMASSASSIN = shutil.which("spamassassin")
CHROMIUM = find_chromium()
SPAM_SKIP = "SpamAssassin not found: install Debian package spamassassin"
CHROMIUM_SKIP = "headless Chromium not found: install Debian package chromium"
needs_spamassassin = pytest.mark.skipif(SPAMASSASSIN is None, reason=SPAM_SKIP)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=CHROMIUM_SKIP)

FAST = ("size", "mime", "compliance", "accessibility", "links", "subject")  # no outside program
SEED_SUBJECT = "The Emergence of Ketamine Assisted Psychotherapy"  # the seed title (86 chars) is too long

SETTINGS = Settings(public_url=PUBLIC, secret_key="test-secret-key-not-for-production")
TOKEN = TokenSigner(SETTINGS.signing_key()).sign(0)
WHEN = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

ARTICLE = Article(
    title="Finding calm in a busy season",
    slug="finding-calm",
    sections=(
        Section(
            None,
            (
                "Spring is a season of change, and change can unsettle even the steadiest routine. Many of the people "
                "we see in our practice describe the same pattern: more to do, less sleep, and a quiet sense of falling "
                "behind.",
                "This article looks at small, practical steps that help, and at when it makes sense to ask for support. "
                'Our clinicians wrote a longer <a href="https://rootsmentalwellness.example/blog/sleep">guide to better '
                "sleep</a> as well.",
            ),
        ),
        Section(
            "Small steps that add up",
            (
                "Start with one anchor in your day: a short walk, a regular bedtime, or ten minutes without a screen. "
                "Anchors work because they ask for very little and give a sense of control back.",
                "Notice what drains you and what restores you. Writing it down for a week often shows a pattern that is "
                "hard to see from inside a busy day.",
            ),
        ),
    ),
    author="Dr. Maya Chen",
    published=date(2024, 3, 4),
    cta=CallToAction("If this season feels heavier than usual, you do not have to carry it alone.", "Connect today"),
    signoff=SignOff("Dr. Maya Chen", "Clinical Psychologist"),
)
PREHEADER = "Three small steps that help, and how to tell when it is time to ask for support."
SUBJECT = "Finding calm in a busy season"


@lru_cache(maxsize=8)
def rendered(subject: str = SUBJECT, preheader: str = PREHEADER):  # type: ignore[no-untyped-def]
    return render_campaign(ARTICLE, brand_from_settings(SETTINGS), subject=subject, preheader=preheader)


def build(
    html: str | None = None,
    text: str | None = None,
    subject: str | None = None,
    *,
    settings: Settings = SETTINGS,
    unsubscribe_url: str | None = None,
) -> bytes:
    """The message a recipient (Alex) gets, through the real MIME builder."""
    campaign = rendered()
    message = CampaignMessage(
        campaign_id=1,
        subject=campaign.subject if subject is None else subject,
        html=campaign.html if html is None else html,
        text=campaign.text if text is None else text,
        from_email=settings.from_email,
        from_name=settings.from_name,
        reply_to=settings.reply_to,
        category="campaign-1",
        sending_domain=settings.sending_domain,
    )
    recipient = Recipient(
        delivery_id=0,
        email="alex@example.com",
        name="Alex Example",
        substitutions=recipient_values("Alex", TOKEN),
        unsubscribe_url=unsubscribe_url or f"{settings.public_base}/u/{TOKEN}",
    )
    return build_mime(message, recipient, personalise=personalise, date=WHEN).as_bytes()


def context(**changes) -> CheckContext:  # type: ignore[no-untyped-def]
    campaign = rendered()
    values = dict(
        public_url=PUBLIC,
        postal_address=SETTINGS.postal_address,
        brand_name=SETTINGS.brand_name,
        sending_domain=SETTINGS.sending_domain,
        links={link.position: link.kind for link in campaign.links},
        cta_label="Connect today",
        preheader=PREHEADER,
        sample_token=TOKEN,
    )
    values.update(changes)
    return CheckContext(**values)


def run(eml: bytes, name: str, **ctx) -> Check:  # type: ignore[no-untyped-def]
    [result] = check_message(eml, context=context(**ctx), only=(name,))
    return result


def assert_fault_fails(fault: tuple[Callable[[], bytes], str, str], name: str) -> None:
    """A fault table's row (make the message, words of the reason, words of the fix): check
    ``name`` fails that message, saying both."""
    make, reason, hint = fault
    result = run(make(), name)
    assert result.status == "fail"
    assert reason in result.reason and hint in result.fix_hint, (result.reason, result.fix_hint)


def with_headers(eml: bytes, **headers: str | None) -> bytes:
    """The same message with headers replaced (``None`` removes one)."""
    msg = email.message_from_bytes(eml, policy=policy.SMTP)
    for name, value in headers.items():
        name = name.replace("_", "-")
        del msg[name]
        if value is not None:
            msg[name] = value
    return msg.as_bytes()


def html_only(html: str) -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = SUBJECT
    msg["From"] = f"{SETTINGS.from_name} <{SETTINGS.from_email}>"
    msg["To"] = "alex@example.com"
    msg["Reply-To"] = SETTINGS.reply_to
    msg["Date"] = "Mon, 02 Mar 2026 09:00:00 +0000"
    msg["Message-ID"] = f"<html-only.1@{SETTINGS.sending_domain}>"
    msg["List-Unsubscribe"] = f"<{PUBLIC}/u/{TOKEN}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(personalise(html, recipient_values("Alex", TOKEN)), subtype="html", cte="quoted-printable")
    return msg.as_bytes()


SIGNOFF = '<p style="margin:0 0 4px;">Warmly,</p>'


def inserted(snippet: str, html: str | None = None) -> str:
    """The campaign HTML with ``snippet`` placed in the white card, before the sign-off."""
    html = rendered().html if html is None else html
    assert SIGNOFF in html
    return html.replace(SIGNOFF, snippet + SIGNOFF, 1)


def cta_position() -> int:
    return next(link.position for link in rendered().links if link.kind == "cta")


# --- the good message ------------------------------------------------------------------------------


def test_a_good_message_passes_every_fast_check() -> None:
    results = check_message(build(), context=context(), only=FAST)
    assert [(c.name, c.status) for c in results] == [(name, "pass") for name in FAST], [c.reason for c in results]
    by_name = {c.name: c for c in results}
    assert by_name["accessibility"].details["lowest_contrast"] >= 4.5
    assert by_name["links"].details["tracked_positions"]["HTML"]  # the article link and the CTA
    assert by_name["subject"].details["preheader"] == PREHEADER


def test_report_shape_and_unknown_check_name() -> None:
    checks = check_message(build(), context=context(), only=("size", "subject"))
    report = PreflightReport(tuple(checks), campaign_id=7, sample_email="alex@example.com")
    data = json.loads(json.dumps(report.to_dict()))
    assert (
        data["passed"] is True and data["failed"] == [] and [c["name"] for c in data["checks"]] == ["size", "subject"]
    )
    assert set(data["checks"][0]) == {"name", "status", "reason", "fix_hint", "details", "title"}
    with pytest.raises(ValueError, match="unknown check"):
        check_message(build(), context=context(), only=("nope",))


# --- 1. spam ---------------------------------------------------------------------------------------


@needs_spamassassin
def test_spam_good_message_scores_low() -> None:
    result = run(build(), "spam")
    assert result.status == "pass", result.reason
    assert result.details["score"] < 2 and result.details["tool"] == "spamassassin -L -t"
    assert all({"name", "points", "description"} <= set(rule) for rule in result.details["rules"])


@needs_spamassassin
def test_spam_html_only_message_fails_on_mime_html_only() -> None:
    result = run(html_only(rendered().html), "spam")
    assert result.status == "fail"
    assert "MIME_HTML_ONLY" in result.reason and "text/plain" in result.fix_hint


def test_spam_without_spamassassin_warns_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spam_module.shutil, "which", lambda name: None)
    monkeypatch.delenv(spam_module.SPAMD_HOST_ENV, raising=False)
    spam_module._CACHE.clear()
    result = run(build(), "spam")
    assert result.status == "warn" and "not installed" in result.reason
    assert "Debian package spamassassin" in result.fix_hint


def test_spam_report_parsing_reads_scores_wrapped_descriptions_and_the_last_report() -> None:
    report = """Subject: Content analysis details: (99.0 points, 5.0 required)
(the echoed message above can say anything)

Content analysis details:   (2.3 points, 5.0 required)

 pts rule name              description
---- ---------------------- --------------------------------------------------
-0.0 NO_RECEIVED            Informational: message has no Received headers
 0.7 HTML_FONT_LOW_CONTRAST BODY: HTML font color similar or identical to
                            background
 1.6 MIME_HTML_ONLY         BODY: Message only has text/html MIME parts

"""
    score, threshold, rules = parse_report(report)
    assert (score, threshold) == (2.3, 5.0)
    assert [(r.name, r.points) for r in rules] == [
        ("NO_RECEIVED", -0.0),
        ("HTML_FONT_LOW_CONTRAST", 0.7),
        ("MIME_HTML_ONLY", 1.6),
    ]
    assert rules[1].description == "BODY: HTML font color similar or identical to background"
    assert spam_module._host_port("spamd.internal:783") == ("spamd.internal", "783")
    assert spam_module._host_port("[::1]") == ("::1", "")


# --- 2. size ---------------------------------------------------------------------------------------


def big_html(kilobytes: int = 120) -> str:
    paragraph = (
        '<p style="margin:0 0 18px;">' + " ".join(["Rest, routine and a kind word to yourself."] * 10) + "</p>\n"
    )
    return inserted(paragraph * (kilobytes * 1024 // len(paragraph) + 1))


def test_size_passes_a_normal_message_and_fails_a_120_kb_one() -> None:
    ok = run(build(), "size")
    assert ok.status == "pass" and ok.details["as_sent_bytes"] < 30 * 1024
    assert ok.details["tracking_tokens"] >= 4  # links, footer and pixel: counted as sent
    big = run(build(html=big_html()), "size")
    assert big.status == "fail" and "Gmail clips" in big.reason and big.details["kb"] > 120
    assert "NEWSLETTER_TEASER_WORDS" in big.fix_hint


# --- 3. parts and headers --------------------------------------------------------------------------


def _long_line_message() -> bytes:
    msg = email.message_from_bytes(build(), policy=policy.SMTP)
    raw = msg.as_bytes()
    long_html = "<p>" + "calm " * 300 + "</p>"  # 1,500 characters on one line, sent 8bit
    html_part = [p for p in msg.walk() if p.get_content_type() == "text/html"][0]
    html_part.set_content(long_html, subtype="html", cte="8bit")
    assert raw != msg.as_bytes()
    return msg.as_bytes(policy=policy.SMTP.clone(max_line_length=0))


MIME_FAULTS = {
    "no text part": (lambda: html_only(rendered().html), "there is no text/plain part", "txt.j2"),
    "empty text part": (lambda: build(text=""), "text/plain part is empty", "txt.j2"),
    "http unsubscribe": (
        lambda: build(unsubscribe_url=f"http://127.0.0.1:8000/u/{TOKEN}"),
        "List-Unsubscribe has no https URL",
        "set NEWSLETTER_PUBLIC_URL to your https tracking domain",
    ),
    "no one-click post": (
        lambda: with_headers(build(), List_Unsubscribe_Post=None),
        "List-Unsubscribe-Post",
        "build_mime",
    ),
    "no display name": (
        lambda: with_headers(build(), From=SETTINGS.from_email),
        "no display name",
        "NEWSLETTER_FROM_NAME",
    ),
    "no reply-to": (lambda: with_headers(build(), Reply_To=None), "no Reply-To", "NEWSLETTER_REPLY_TO"),
    "foreign message-id": (
        lambda: with_headers(build(), Message_ID="<1.2@mailer.example.net>"),
        "not on the sending domain",
        "NEWSLETTER_FROM_EMAIL",
    ),
    "no date": (lambda: with_headers(build(), Date=None), "no valid Date", "build_mime"),
    "long line": (_long_line_message, "exceed 998 characters", "quoted-printable"),
}


def test_mime_passes_the_real_builder_with_an_https_public_url() -> None:
    result = run(build(), "mime")
    assert result.status == "pass", result.reason
    assert result.details["content_type"] == "multipart/alternative" and result.details["longest_line"] <= 78


@pytest.mark.parametrize("fault", list(MIME_FAULTS))
def test_mime_fails_each_fault_with_its_reason_and_fix(fault: str) -> None:
    assert_fault_fails(MIME_FAULTS[fault], "mime")


def test_mime_demo_default_public_url_fails_with_the_setting_to_change() -> None:
    demo = Settings()  # NEWSLETTER_PUBLIC_URL defaults to http://127.0.0.1:8000
    result = run(build(settings=demo), "mime", public_url=demo.public_url)
    assert result.status == "fail" and "http://127.0.0.1:8000/u/" in result.reason
    assert "set NEWSLETTER_PUBLIC_URL to your https tracking domain" in result.fix_hint


# --- 4. compliance ---------------------------------------------------------------------------------


def _without_address() -> bytes:
    campaign = rendered()
    address = SETTINGS.postal_address
    text = re.sub(r"Roots Mental Wellness, 100 Example Avenue.*?USA", "", campaign.text, flags=re.DOTALL)
    assert address in campaign.html and "97201" not in text
    return build(html=campaign.html.replace(address, ""), text=text)


def _without_unsubscribe_link() -> bytes:
    html = re.sub(r'<a href="[^"]*/u/%%token%%"[^>]*>Unsubscribe</a>', "", rendered().html)
    assert "/u/%%token%%" not in html
    return build(html=html)


COMPLIANCE_FAULTS = {
    "no postal address": (
        _without_address,
        "the postal address (Roots Mental Wellness, 100 Example Avenue",
        "postal_address",
    ),
    "no unsubscribe link": (_without_unsubscribe_link, "no visible unsubscribe link", "footer.mjml.j2"),
    "hidden unsubscribe link": (
        lambda: build(
            html=re.sub(
                r'(<a href="[^"]*/u/%%token%%"[^>]*>Unsubscribe</a>)',
                r'<span style="display:none;">\1</span>',
                rendered().html,
            )
        ),
        "hidden or has no text",
        "footer.mjml.j2",
    ),
    "jinja leftover": (
        lambda: build(html=inserted("<p>Dear {{ subscriber.name }},</p>")),
        "unrendered markup in the HTML: {{",
        "template",
    ),
    "placeholder leftover": (
        lambda: build(text=rendered().text + "\nP.S. %%favourite_colour%%\n"),
        "unrendered markup in the text: %%favourite_colour%%",
        "%%first_name%%",
    ),
    "sender not named": (lambda: build(), "is not named", "brand_name"),
}


def test_compliance_passes_the_rendered_footer() -> None:
    css = "<style>@media (max-width:480px){#outlook a{padding:0}}</style>"  # minified CSS is not Jinja
    result = run(build(html=rendered().html.replace("</head>", css + "</head>", 1)), "compliance")
    assert result.status == "pass", result.reason
    assert result.details["parts_checked"] == ["HTML", "text"]


@pytest.mark.parametrize("fault", list(COMPLIANCE_FAULTS))
def test_compliance_fails_each_fault(fault: str) -> None:
    make, reason, hint = COMPLIANCE_FAULTS[fault]
    extra = {"brand_name": "Cedar Counselling Collective"} if fault == "sender not named" else {}
    result = run(make(), "compliance", **extra)
    assert result.status == "fail"
    assert reason in result.reason and hint in result.fix_hint, (result.reason, result.fix_hint)


def test_compliance_without_a_configured_address_names_the_setting() -> None:
    result = run(build(), "compliance", postal_address="")
    assert result.status == "fail" and "NEWSLETTER_POSTAL_ADDRESS" in result.fix_hint


# --- 5. accessibility ------------------------------------------------------------------------------

ACCESSIBILITY_FAULTS = {
    "no lang": (lambda h: h.replace('<html lang="en"', "<html", 1), "no lang attribute", 'lang="en"'),
    "image without alt": (
        lambda h: inserted('<img src="https://rootsmentalwellness.example/team.jpg" width="200" height="120">', h),
        "1 image(s) without alt text: https://rootsmentalwellness.example/team.jpg",
        'alt=""',
    ),
    "layout table without role": (
        lambda h: inserted("<table><tr><td>Opening hours: 9 to 5</td></tr></table>", h),
        'layout table(s) without role="presentation"',
        'role="presentation"',
    ),
    "low contrast text": (
        lambda h: inserted('<p style="color:#aaaaaa;">Small print in light grey.</p>', h),
        "below WCAG AA contrast; worst 2.32:1 (#aaaaaa on #ffffff",
        "theme.py",
    ),
    "stylesheet link colour on the dark button colour": (  # the <style> block's a { color } applies
        lambda h: inserted(
            '<div style="background-color:#1c5c52;padding:8px;"><a href="mailto:hello@example.com">'
            "Write to us</a></div>",
            h,
        ),
        '(#17675b on #1c5c52, "Write to us"',
        "theme.py",
    ),
}


def test_accessibility_passes_the_template_and_allows_decorative_images_and_data_tables() -> None:
    html = inserted(
        '<img src="https://rootsmentalwellness.example/leaf.png" alt="" width="40" height="40">'
        "<table><caption>Opening hours</caption><tr><th>Day</th><td>9 to 5</td></tr></table>"
    )
    result = run(build(html=html), "accessibility")
    assert result.status == "pass", result.reason
    assert result.details["lang"] == "en" and result.details["images"] == 2
    assert result.details["lowest_contrast"] >= 4.5  # the hidden, white preheader is not judged


@pytest.mark.parametrize("fault", list(ACCESSIBILITY_FAULTS))
def test_accessibility_fails_each_fault(fault: str) -> None:
    change, reason, hint = ACCESSIBILITY_FAULTS[fault]
    result = run(build(html=change(rendered().html)), "accessibility")
    assert result.status == "fail"
    assert reason in result.reason and hint in result.fix_hint, (result.reason, result.fix_hint)


# --- 6. links --------------------------------------------------------------------------------------


def _without_cta() -> bytes:
    campaign = rendered()
    position = cta_position()
    html = re.sub(
        rf'<a href="{re.escape(PUBLIC)}/c/%%token%%/{position}"[^>]*>\s*Connect today\s*</a>', "", campaign.html
    )
    text = re.sub(rf"Connect today: \S+/{position}\n", "", campaign.text)
    assert f'/c/%%token%%/{position}"' not in html and f"/c/%%token%%/{position}\n" not in text
    return build(html=html, text=text)


LINK_FAULTS = {
    "plain http": (
        lambda: build(html=inserted('<p><a href="http://rootsmentalwellness.example/old">old page</a></p>')),
        "1 link(s) not https: http://rootsmentalwellness.example/old",
        "https",
    ),
    "relative": (
        lambda: build(html=inserted('<p><a href="/about">about us</a></p>')),
        "not absolute: /about",
        "absolute",
    ),
    "not tracked": (
        lambda: build(html=inserted('<p><a href="https://rootsmentalwellness.example/team">team</a></p>')),
        "not click-tracked: https://rootsmentalwellness.example/team",
        "track()",
    ),
    "unregistered position": (
        lambda: build(html=inserted(f'<p><a href="{PUBLIC}/c/%%token%%/99">more</a></p>')),
        "unregistered position",
        "re-create the campaign",
    ),
    "no CTA": (_without_cta, "the call to action (Connect today) is missing from the HTML part", "cta.mjml.j2"),
}


def test_links_pass_tracked_footer_and_mailto_links() -> None:
    result = run(
        build(html=inserted('<p>Questions? <a href="mailto:hello@rootsmentalwellness.example">Write to us</a>.</p>')),
        "links",
    )
    assert result.status == "pass", result.reason
    assert cta_position() in result.details["tracked_positions"]["HTML"]
    assert cta_position() in result.details["tracked_positions"]["text"]


@pytest.mark.parametrize("fault", list(LINK_FAULTS))
def test_links_fail_each_fault(fault: str) -> None:
    assert_fault_fails(LINK_FAULTS[fault], "links")


# --- 7. responsive ---------------------------------------------------------------------------------


@needs_chromium
def test_responsive_passes_the_template_and_saves_both_screenshots(tmp_path: Path) -> None:
    result = run(build(), "responsive", screenshots_dir=tmp_path / "shots")
    assert result.status == "pass", result.reason
    phone = result.details["widths"]["375"]
    assert phone["scrollWidth"] <= 375 and phone["cta"][0]["h"] >= 44 and phone["cta"][0]["visible"]
    for width in (375, 600):
        shot = tmp_path / "shots" / f"preflight-{width}.png"
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


@needs_chromium
def test_responsive_passes_stacking_columns_and_fails_a_desktop_only_layout() -> None:
    from mjml import mjml2html

    stacking = mjml2html(
        '<mjml lang="en"><mj-body><mj-section><mj-column><mj-text>What to expect in a session</mj-text></mj-column>'
        "<mj-column><mj-text>How to book a place</mj-text></mj-column></mj-section><mj-section><mj-column>"
        f'<mj-button href="{PUBLIC}/c/%%token%%/{cta_position()}" font-size="16px" inner-padding="14px 28px">'
        "Connect today</mj-button></mj-column></mj-section></mj-body></mjml>"
    )
    bad = (FIXTURES / "not_responsive.html").read_text(encoding="utf-8")
    bad = bad.replace("/c/TOKEN/1", f"/c/%%token%%/{cta_position()}")
    good_result = run(build(html=stacking), "responsive")
    assert good_result.status == "pass", good_result.reason
    assert "1 multi-column section(s) stack on the phone" in good_result.reason
    widths = good_result.details["widths"]
    assert [s["stacked"] for s in widths["375"]["sections"]] == [True]
    assert [s["stacked"] for s in widths["600"]["sections"]] == [False]  # side by side on a desktop

    result = run(build(html=bad), "responsive")
    assert result.status == "fail"
    assert "at 375 px the page is 640 px wide and scrolls sideways" in result.reason
    assert "at 600 px the page is 640 px wide" in result.reason
    assert "1 multi-column section(s) stay side by side at 375 px" in result.reason
    assert re.search(r"the CTA button \"Connect today\" is 2\d px tall at 375 px", result.reason), result.reason


def test_responsive_without_chromium_warns_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(responsive_module.chromium, "find_chromium", lambda: None)
    result = run(build(), "responsive")
    assert result.status == "warn" and "not installed" in result.reason
    assert "Debian package chromium" in result.fix_hint


# --- 8. subject and preheader ----------------------------------------------------------------------

FIRST_SENTENCE = "Spring is a season of change, and change can unsettle even the steadiest routine."


def test_subject_passes_a_short_subject_and_a_preheader_that_adds_to_it() -> None:
    result = run(build(), "subject")
    assert result.status == "pass", result.reason
    assert result.details["subject_length"] == len(SUBJECT)


def test_subject_fails_a_long_subject_a_copied_preheader_and_a_missing_one() -> None:
    long_subject = "Finding calm in a busy season: three small steps, better sleep and when to ask for help"
    assert len(long_subject) >= 80
    too_long = run(build(subject=long_subject), "subject")
    assert too_long.status == "fail" and f"the subject is {len(long_subject)} characters" in too_long.reason
    assert "--subject" in too_long.fix_hint

    copied = rendered(SUBJECT, FIRST_SENTENCE)
    copy = run(build(html=copied.html), "subject", preheader=FIRST_SENTENCE)
    assert copy.status == "fail" and "the preheader repeats the opening of the message" in copy.reason
    assert "--preheader" in copy.fix_hint

    none = rendered(SUBJECT, "")
    missing = run(build(html=none.html), "subject", preheader="")
    assert missing.status == "fail" and "there is no preheader" in missing.reason

    dropped = run(build(html=none.html), "subject")  # the campaign has one; the template lost it
    assert dropped.status == "fail" and "does not carry it" in dropped.reason

    empty = run(with_headers(build(), Subject=None), "subject")
    assert empty.status == "fail" and "the subject is empty" in empty.reason


# --- the seed campaign and a broken one, on both stores ---------------------------------------------


def _seed_campaign(engine, settings, seed_article_path: Path) -> int:  # type: ignore[no-untyped-def]
    add_subscribers(engine, 3)
    with session_scope(engine) as session:
        slug = import_article(session, seed_article_path).row.slug
        return create_campaign(session, settings, article_slug=slug, segment="all", subject=SEED_SUBJECT).id


def test_seed_campaign_passes_every_check(engine, settings, seed_article_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    campaign_id = _seed_campaign(engine, settings, seed_article_path)
    with session_scope(engine) as session:
        report = run_preflight(session, settings, campaign_id, screenshots_dir=tmp_path)
    assert report.sample_email == "reader0@example.com"
    statuses = {c.name: c.status for c in report.checks}
    for check in report.checks:
        if check.name in FAST:
            assert check.status == "pass", (check.name, check.reason)
    missing = []
    spam = report.check("spam")
    if SPAMASSASSIN:
        assert spam.status == "pass", spam.reason
        assert spam.details["score"] <= 1.0, spam.details["rules"]
    else:
        assert spam.status == "warn" and "spamassassin" in spam.fix_hint
        missing.append(SPAM_SKIP)
    responsive = report.check("responsive")
    if CHROMIUM:
        assert responsive.status == "pass", responsive.reason
        assert sorted(Path(p).name for p in report.screenshots) == ["preflight-375.png", "preflight-600.png"]
    else:
        assert responsive.status == "warn" and "chromium" in responsive.fix_hint
        missing.append(CHROMIUM_SKIP)
    assert not report.failed, statuses
    # A person reads every check the README's table promises, in the table's order.
    readme_rows = _readme_check_rows()
    assert len(report.checks) == len(readme_rows) == 8, [c.title for c in report.checks]
    for check, row in zip(report.checks, readme_rows, strict=True):
        assert check.title.startswith(row), (check.title, row)
    if missing:
        pytest.skip("; ".join(missing))


def _readme_check_rows() -> list[str]:
    """The first column of the README's preflight table (``| check | passes when |``)."""
    lines = (REPO_DIR / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("| check | passes when |") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1].strip())
    return rows


def _break_campaign(engine, settings, campaign_id: int) -> None:  # type: ignore[no-untyped-def]
    """No text part, an image without alt text, a 120 KB body, no postal address."""
    with session_scope(engine) as session:
        campaign = session.get(models.Campaign, campaign_id)
        html = campaign.html.replace(settings.postal_address, "")
        image = '<p><img src="https://rootsmentalwellness.example/clinic.jpg" width="240" height="160"></p>'
        body = (
            '<p style="margin:0 0 18px;">' + " ".join(["Rest, routine and a kind word to yourself."] * 10) + "</p>\n"
        ) * 220
        html = html.replace(
            '<p style="margin:0 0 4px;">Warmly,</p>', image + body + '<p style="margin:0 0 4px;">Warmly,</p>', 1
        )
        assert image in html and 118 * 1024 < len(html.encode()) < 125 * 1024  # about 120 KB
        campaign.html = html
        campaign.text = ""


def test_broken_campaign_fails_with_four_clear_reasons(engine, settings, seed_article_path) -> None:  # type: ignore[no-untyped-def]
    campaign_id = _seed_campaign(engine, settings, seed_article_path)
    _break_campaign(engine, settings, campaign_id)
    with session_scope(engine) as session:
        report = run_preflight(session, settings, campaign_id)
    failed = {c.name: c for c in report.failed}
    assert {"size", "mime", "compliance", "accessibility"} <= set(failed), {c.name: c.reason for c in report.checks}
    assert "the text/plain part is empty" in failed["mime"].reason
    assert (
        "1 image(s) without alt text: https://rootsmentalwellness.example/clinic.jpg" in failed["accessibility"].reason
    )
    assert "Gmail clips" in failed["size"].reason and failed["size"].details["kb"] > 118
    assert (
        "the postal address" in failed["compliance"].reason
        and "missing from the HTML part" in failed["compliance"].reason
    )
    # The only other check allowed to fail is the spam score, and only for the same missing text part.
    others = set(failed) - {"size", "mime", "compliance", "accessibility"}
    assert others <= {"spam"}, others
    if "spam" in failed:
        assert re.search(r"MIME_HTML_ONLY|MPART_ALT_DIFF", failed["spam"].reason), failed["spam"].reason
    for name in ("links", "subject"):
        assert report.check(name).status == "pass", report.check(name).reason

    # The gate refuses it, naming each failed check; --force records who overrode it.
    monkey = pytest.MonkeyPatch()
    monkey.setattr(gate_module, "run_preflight", lambda *a, **k: report)
    try:
        with session_scope(engine) as session, pytest.raises(UserError) as refused:
            ensure_preflight_passes(session, settings, campaign_id, force=False, operator="alice")
        for name in ("size", "mime", "compliance", "accessibility"):
            assert f"{name}: " in refused.value.message
        assert "--force" in refused.value.message and refused.value.where == f"campaign {campaign_id}"
        with session_scope(engine) as session:
            assert session.get(models.Campaign, campaign_id).forced_by is None
            ensure_preflight_passes(session, settings, campaign_id, force=True, operator="alice")
    finally:
        monkey.undo()
    with session_scope(engine) as session:
        forced_by = session.get(models.Campaign, campaign_id).forced_by
    assert re.fullmatch(
        r"alice at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00: (spam, )?size, mime, compliance, accessibility", forced_by
    ), forced_by


def test_gate_lets_a_passing_campaign_through_without_a_record(
    engine, settings, seed_article_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The real checks on the seed campaign, on a machine without SpamAssassin or Chromium: two
    warnings, no failure. Warnings never block, and nothing is recorded as forced."""
    campaign_id = _seed_campaign(engine, settings, seed_article_path)
    monkeypatch.setattr(spam_module.shutil, "which", lambda name: None)
    monkeypatch.delenv(spam_module.SPAMD_HOST_ENV, raising=False)
    spam_module._CACHE.clear()
    monkeypatch.setattr(responsive_module.chromium, "find_chromium", lambda: None)
    with session_scope(engine) as session:
        report = ensure_preflight_passes(session, settings, campaign_id, force=False, operator="bob")
    statuses = {c.name: c.status for c in report.checks}
    assert statuses == {**{name: "pass" for name in FAST}, "spam": "warn", "responsive": "warn"}, report.checks
    assert report.campaign_id == campaign_id and report.sample_email == "reader0@example.com"
    with session_scope(engine) as session:
        assert session.get(models.Campaign, campaign_id).forced_by is None


def test_forced_record_fits_the_column() -> None:
    when = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    assert forced_record("alice", ["size", "spam"], when) == "alice at 2026-03-02T09:00:00+00:00: size, spam"
    long = forced_record("x" * 500, list(CHECK_NAMES), when)
    assert len(long) <= 200 and long.endswith(": " + ", ".join(CHECK_NAMES)) and long.startswith("xxx")


def test_preflight_command_prints_and_exits_non_zero_on_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    failing = PreflightReport(
        (Check("size", "pass", "20 KB"), Check("mime", "fail", "no [Reply-To] header", "set NEWSLETTER_REPLY_TO")),
        campaign_id=3,
        sample_email="reader0@example.com",
    )
    monkeypatch.setattr(command_module, "run_preflight", lambda *a, **k: failing)
    monkeypatch.setattr(command_module, "session_scope", _null_scope)
    stream = io.StringIO()
    assert preflight_command(None, SETTINGS, 3, as_json=True, stream=stream) == 1
    data = json.loads(stream.getvalue())
    assert data["failed"] == ["mime"] and data["checks"][1]["fix_hint"] == "set NEWSLETTER_REPLY_TO"

    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, color_system=None)
    assert preflight_command(None, SETTINGS, 3, console=console) == 1
    printed = console.file.getvalue()
    assert "FAIL  Parts and headers: no [Reply-To] header" in printed and "fix: set NEWSLETTER_REPLY_TO" in printed
    passing = PreflightReport((Check("size", "pass", "20 KB"),), campaign_id=3, sample_email="r@example.com")
    monkeypatch.setattr(command_module, "run_preflight", lambda *a, **k: passing)
    assert preflight_command(None, SETTINGS, 3, console=Console(file=io.StringIO())) == 0


class _null_scope:
    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        pass

    def __enter__(self):  # type: ignore[no-untyped-def]
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# --- a campaign rendered for an old public URL --------------------------------------------------------


def test_a_campaign_rendered_for_an_old_public_url_fails_one_check_that_names_rerender(
    engine, settings, seed_article_path
) -> None:  # type: ignore[no-untyped-def]
    """Made on the default http://127.0.0.1:8000, checked after NEWSLETTER_PUBLIC_URL became https:
    one failing check saying so (not "no unsubscribe link", "no call to action" and "no CTA
    button", which blamed the templates), and the gate refuses it even with --force."""
    campaign_id = _seed_campaign(engine, settings.with_overrides(public_url="http://127.0.0.1:8000"), seed_article_path)
    with session_scope(engine) as session:
        report = run_preflight(session, settings, campaign_id)
    [check] = report.checks
    assert (check.name, check.status) == ("public_url", "fail")
    assert check.reason == (
        f"campaign {campaign_id} was rendered for http://127.0.0.1:8000; the public URL is now "
        f"{PUBLIC}: run `newsletter campaign rerender {campaign_id}`"
    )
    assert "template" not in check.reason + check.fix_hint
    assert report.to_dict()["failed"] == ["public_url"] and report.sample_email == "reader0@example.com"
    for force in (False, True):
        with session_scope(engine) as session, pytest.raises(UserError) as refused:
            ensure_preflight_passes(session, settings, campaign_id, force=force, operator="alice")
        assert f"run `newsletter campaign rerender {campaign_id}`" in str(refused.value)
    with session_scope(engine) as session:
        assert session.get(models.Campaign, campaign_id).forced_by is None

    from rich.console import Console

    console = Console(file=io.StringIO(), width=300, color_system=None)
    assert preflight_command(engine, settings, campaign_id, console=console) == 1
    printed = console.file.getvalue()
    assert printed.count("FAIL") == 1 and "was rendered for http://127.0.0.1:8000" in printed
    assert "even with --force" in printed


def test_a_campaign_rendered_for_todays_public_url_has_no_public_url_check(engine, settings, seed_article_path) -> None:  # type: ignore[no-untyped-def]
    campaign_id = _seed_campaign(engine, settings, seed_article_path)
    with session_scope(engine) as session:
        report = run_preflight(session, settings, campaign_id)
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
