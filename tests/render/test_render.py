"""The render room: Article + Brand → compiled HTML and text parts, tracked links, placeholders.

No database. Articles are built by hand except for the golden test, which renders the seed.
"""

from __future__ import annotations

import html
import os
import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from factories import roots_brand
from newsletter.content import Article, CallToAction, Section, SignOff, load_article
from newsletter.render import (
    PLACEHOLDERS,
    Brand,
    Link,
    RenderedCampaign,
    RenderError,
    personalise,
    recipient_values,
    render_campaign,
)
from newsletter.render.theme import TEXT_PAIRS, THEME, contrast_ratio
from repo_paths import REPO_DIR, TESTS_DIR

REPO = REPO_DIR
TEMPLATES = REPO / "templates"
GOLDEN = TESTS_DIR / "golden" / "seed_campaign.txt"
PUBLIC = "https://news.example.test"
BOOKING = "https://rootsmentalwellness.example/book"
WEBSITE = "https://rootsmentalwellness.example"


@pytest.fixture
def brand() -> Brand:
    return roots_brand(
        postal_address="Roots Mental Wellness, 100 Example Avenue, Suite 200, Portland, OR 97201, USA",
        public_url=PUBLIC + "/",  # a trailing slash must not produce "//" in URLs
    )


@pytest.fixture
def article() -> Article:
    return Article(
        title="Finding Calm & Steadiness",
        slug="finding-calm",
        sections=(
            Section(
                None,
                (
                    'Stress shows up in the body first. Read <a href="https://example.org/stress?a=1&amp;b=2">this '
                    "overview</a> for the basics.",
                    "Small, regular practices help more than <em>big</em> resolutions.",
                ),
            ),
            Section(
                "Breathing &amp; grounding",
                (
                    "Slow breathing tells the nervous system it is safe. The "
                    '<a href="https://example.org/stress?a=1&amp;b=2">same overview</a> has exercises.',
                ),
            ),
            Section(
                "When to reach out",
                (
                    "If low mood lasts more than two weeks, talk to someone.<br>You deserve support.",
                    'Email <a href="mailto:hello@rootsmentalwellness.example">our front desk</a> any time.',
                ),
            ),
        ),
        author="Noah Warren",
        published=date(2023, 8, 7),
        cta=CallToAction("We are here when you are ready. <strong>Connect with us</strong> today."),
        signoff=SignOff("Noah Warren", "Director of Business Development"),
    )


def _render(article: Article, brand: Brand, **kwargs: object) -> RenderedCampaign:
    options: dict[str, object] = {
        "subject": "Calm, %%first_name%%",
        "preheader": "Three small practices for a steadier week",
    }
    options.update(kwargs)
    return render_campaign(article, brand, **options)  # type: ignore[arg-type]


def _words(fragment: str) -> list[str]:
    """The visible words of an inline-HTML string (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split()


def _tracked(position: int) -> str:
    return f"{PUBLIC}/c/%%token%%/{position}"


# --- the HTML part ------------------------------------------------------------------------------


def test_html_part_has_the_article_cta_and_footer(article: Article, brand: Brand) -> None:
    out = _render(article, brand)
    page = out.html

    assert "Finding Calm &amp; Steadiness" in page
    assert "By Noah Warren · August 7, 2023" in page
    assert "Hi %%first_name_html%%," in page
    for heading in ("Breathing &amp; grounding", "When to reach out"):
        assert heading in page
    assert "Small, regular practices help more than <em>big</em> resolutions." in page

    cta = [link for link in out.links if link.kind == "cta"]
    assert len(cta) == 1 and cta[0].url == brand.booking_url and cta[0].label == "Connect today"
    button = re.search(r'<a href="([^"]+)"[^>]*>\s*Connect today\s*</a>', page)
    assert button and button.group(1) == _tracked(cta[0].position)
    assert BOOKING not in page  # only ever through the tracked redirect

    assert brand.postal_address in page
    assert "You are receiving this because you subscribed to the Roots Mental Wellness newsletter." in page
    for path in ("u", "p", "w"):
        assert f'href="{PUBLIC}/{path}/%%token%%"' in page
    assert re.search(rf'<img src="{re.escape(PUBLIC)}/o/%%token%%\.gif" width="1" height="1" alt=""', page)
    assert "Three small practices for a steadier week&#847;&zwnj;&nbsp;" in page  # preheader, then spacers
    assert "<title>Calm, %%first_name_html%%</title>" in page


def test_html_is_accessible_and_small(article: Article, brand: Brand) -> None:
    page = _render(article, brand).html
    assert re.search(r'<html[^>]* lang="en"', page)
    tables = re.findall(r"<table\b[^>]*>", page)
    assert tables and all('role="presentation"' in table for table in tables)
    assert '<meta name="viewport"' in page and "@media only screen and (max-width: 480px)" in page
    assert len(page.encode("utf-8")) < 100_000
    for leftover in ("{{", "{%", "{#", "<mj-", "</mj-"):
        assert leftover not in page
    # The CTA button's tap target: font size x line height + vertical padding >= 44px.
    style = re.search(r'<a href="[^"]+" target="_blank" style="([^"]*)">\s*Connect today', page)
    assert style
    size = float(re.search(r"font-size:(\d+)px", style.group(1)).group(1))  # type: ignore[union-attr]
    top, _right, bottom, _left = (
        list(map(float, re.findall(r"(\d+)px", re.search(r"padding:([^;]+);", style.group(1)).group(1)))) * 2
    )[:4]  # type: ignore[union-attr]
    assert size * 1.2 + top + bottom >= 44


@pytest.mark.parametrize(("fg", "bg"), TEXT_PAIRS)
def test_text_colours_meet_wcag_aa(fg: str, bg: str) -> None:
    assert contrast_ratio(THEME[fg], THEME[bg]) >= 4.5, (fg, bg)


# --- the text part and link tracking --------------------------------------------------------


def test_text_part_has_every_paragraph_and_tracked_links(article: Article, brand: Brand) -> None:
    out = _render(article, brand)
    text = out.text
    flat = " ".join(text.split())
    for paragraph in article.paragraphs:
        for word in _words(paragraph):
            assert word in flat, word
    assert "Finding Calm & Steadiness" in text
    assert "Hi %%first_name%%," in text and "first_name_html" not in text
    assert "Breathing & grounding\n---------------------" in text
    assert "this overview (" + _tracked(1) + ")" in flat
    assert "our front desk (hello@rootsmentalwellness.example)" in flat  # mailto: shown, not tracked
    assert "talk to someone.\nYou deserve support." in text  # <br> kept as a line break
    assert f"Connect today: {_tracked(2)}" in text
    for path in ("u", "p", "w"):
        assert f"{PUBLIC}/{path}/%%token%%" in text
    assert brand.postal_address in flat and brand.reason in flat
    assert "<" not in text and "&amp;" not in text
    assert all(len(line) <= 72 or "://" in line for line in text.splitlines())
    for leftover in ("{{", "{%", "{#"):
        assert leftover not in text


def test_links_are_registered_once_and_shared_by_both_parts(article: Article, brand: Brand) -> None:
    out = _render(article, brand)
    assert out.links == (
        Link(1, "https://example.org/stress?a=1&b=2", "this overview", "article"),
        Link(2, BOOKING, "Connect today", "cta"),
        Link(3, WEBSITE, "Hidden link (only machines click it)", "honeypot"),  # HTML only (test_honeypot.py)
    )
    for link in out.links:
        assert _tracked(link.position) in out.html
        assert (_tracked(link.position) in out.text) == (link.kind != "honeypot")
    assert re.findall(r"/c/%%token%%/(\d+)", out.html) and set(re.findall(r"/c/%%token%%/(\d+)", out.html)) == set(
        re.findall(r"/c/%%token%%/(\d+)", out.text)
    ) | {"3"}
    assert "example.org/stress" not in out.html and "example.org/stress" not in out.text
    assert "mailto:hello@rootsmentalwellness.example" in out.html  # not trackable: left alone


def test_same_url_as_cta_and_in_the_body_gets_two_positions(brand: Brand) -> None:
    article = Article(
        title="T",
        slug="t",
        sections=(Section(None, (f'<a href="{BOOKING}">Book</a> now, or <a href="{BOOKING}">book</a> later.',)),),
    )
    out = _render(article, brand)
    assert [(link.position, link.kind) for link in out.links] == [(1, "article"), (2, "cta"), (3, "honeypot")]
    assert "Book (" + _tracked(1) + ") now, or book (" + _tracked(1) + ") later." in " ".join(out.text.split())


def test_long_article_is_sent_as_a_teaser_with_read_more(brand: Brand) -> None:
    paragraphs = tuple(f"Paragraph {n} " + "word " * 99 for n in range(1, 21))  # 20 x 101 words
    article = Article(
        title="Long read",
        slug="long-read",
        sections=(Section(None, paragraphs[:10]), Section("Later part", paragraphs[10:])),
    )
    assert article.word_count > brand.teaser_words
    out = _render(article, brand)
    assert "Paragraph 1 " in out.html and "Paragraph 2 " in out.text
    assert "Paragraph 20 " not in out.html and "Paragraph 20 " not in out.text
    assert "Later part" not in out.html
    read_more = [link for link in out.links if link.kind == "read_more"]
    assert len(read_more) == 1 and read_more[0].url == f"{PUBLIC}/a/long-read"
    assert read_more[0].label == "Read the full article"
    assert f"Read the full article: {_tracked(read_more[0].position)}" in out.text
    assert re.search(rf'href="{re.escape(_tracked(read_more[0].position))}"[^>]*>Read the full article', out.html)


def test_short_article_is_sent_whole_and_missing_cta_gets_a_default(brand: Brand) -> None:
    article = Article(title="Short", slug="short", sections=(Section(None, ("One paragraph.",)),))
    out = _render(article, brand)
    assert "Read the full article" not in out.html
    assert [link.kind for link in out.links] == ["cta", "honeypot"]
    assert "you don't have to carry it alone" in out.text
    assert "The Roots Mental Wellness team" in out.text  # default sign-off


# --- placeholders -------------------------------------------------------------------------------


def test_placeholders_and_recipient_values() -> None:
    assert PLACEHOLDERS == ("%%first_name%%", "%%first_name_html%%", "%%token%%")
    assert recipient_values("  Ana  ", "tok") == {
        "%%first_name%%": "Ana",
        "%%first_name_html%%": "Ana",
        "%%token%%": "tok",
    }
    assert recipient_values(None, "t")["%%first_name%%"] == "there"
    assert recipient_values("   ", "t")["%%first_name_html%%"] == "there"
    values = recipient_values('<b>"Jo" & co</b>', "t")
    assert values["%%first_name_html%%"] == "&lt;b&gt;&quot;Jo&quot; &amp; co&lt;/b&gt;"
    assert values["%%first_name%%"] == '<b>"Jo" & co</b>'


def test_personalise_is_a_single_pass() -> None:
    values = recipient_values("%%token%%", "abc.%%first_name%%")
    content = 'Hi %%first_name%%, <a href="/u/%%token%%">%%first_name_html%%</a> %%other%%'
    assert personalise(content, values) == 'Hi %%token%%, <a href="/u/abc.%%first_name%%">%%token%%</a> %%other%%'


def test_rendered_campaign_personalises_end_to_end(article: Article, brand: Brand) -> None:
    out = _render(article, brand)
    values = recipient_values("<Ana>", "T0K")
    page = personalise(out.html, values)
    assert "Hi &lt;Ana&gt;," in page and "<Ana>" not in page
    assert f"{PUBLIC}/u/T0K" in page and "%%" not in page
    assert "Hi <Ana>," in personalise(out.text, values)
    assert personalise(out.subject, values) == "Calm, <Ana>"


# --- errors name the template file and line ------------------------------------------------------


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    return folder


def _where(error: pytest.ExceptionInfo[RenderError]) -> str:
    assert error.value.where
    return error.value.where.replace(os.sep, "/")


def test_syntax_error_names_file_and_line(article: Article, brand: Brand, templates: Path) -> None:
    (templates / "broken.mjml.j2").write_text("<mjml>\n<mj-body>\n{% if %}\n</mj-body>\n</mjml>\n")
    (templates / "broken.txt.j2").write_text("text\n")
    with pytest.raises(RenderError) as error:
        _render(article, brand, template="broken.mjml.j2", templates_dir=templates)
    assert _where(error).endswith("templates/broken.mjml.j2:3")
    assert "syntax" in error.value.message


def test_undefined_variable_in_a_partial_names_the_partial_line(
    article: Article, brand: Brand, templates: Path
) -> None:
    footer = templates / "partials" / "footer.mjml.j2"
    lines = footer.read_text().split("\n")
    lines.insert(4, "        <mj-text>{{ brand.fax_number }}</mj-text>")
    footer.write_text("\n".join(lines))
    with pytest.raises(RenderError) as error:
        _render(article, brand, templates_dir=templates)
    assert _where(error).endswith("templates/partials/footer.mjml.j2:5")
    assert "fax_number" in error.value.message


def test_undefined_variable_in_the_text_template(article: Article, brand: Brand, templates: Path) -> None:
    text = templates / "newsletter.txt.j2"
    text.write_text(text.read_text().replace("Warmly,", "{{ closing_words }}"))
    line = text.read_text().split("\n").index("{{ closing_words }}") + 1
    with pytest.raises(RenderError) as error:
        _render(article, brand, templates_dir=templates)
    assert _where(error).endswith(f"templates/newsletter.txt.j2:{line}")
    assert "closing_words" in error.value.message


def test_missing_template_and_missing_partial(article: Article, brand: Brand, templates: Path) -> None:
    with pytest.raises(RenderError) as error:
        _render(article, brand, template="nope.mjml.j2", templates_dir=templates)
    assert "nope.mjml.j2" in str(error.value) and str(templates) in error.value.message

    main = templates / "newsletter.mjml.j2"
    main.write_text(main.read_text().replace("partials/cta.mjml.j2", "partials/call.mjml.j2"))
    line = next(n for n, text in enumerate(main.read_text().split("\n"), 1) if "partials/call.mjml.j2" in text)
    with pytest.raises(RenderError) as error:
        _render(article, brand, templates_dir=templates)
    assert "partials/call.mjml.j2" in error.value.message and str(templates) in error.value.message
    assert _where(error).endswith(f"templates/newsletter.mjml.j2:{line}")


def test_mismatched_mjml_tag_names_template_line(article: Article, brand: Brand, templates: Path) -> None:
    signoff = templates / "partials" / "signoff.mjml.j2"
    lines = signoff.read_text().split("\n")
    index = next(n for n, text in enumerate(lines) if text.strip() == "</mj-column>")
    lines[index] = "      </mj-colum>"  # a typo MRML itself would accept silently
    signoff.write_text("\n".join(lines))
    with pytest.raises(RenderError) as error:
        _render(article, brand, templates_dir=templates)
    assert _where(error).endswith(f"templates/partials/signoff.mjml.j2:{index + 1}")
    assert "newsletter.mjml.j2" in error.value.message  # the template that produced the MJML
    assert "</mj-colum> does not close <mj-column>" in error.value.message


def test_mjml_compiler_error_names_template_line_and_mjml_message(
    article: Article, brand: Brand, templates: Path
) -> None:
    header = templates / "partials" / "header.mjml.j2"
    lines = header.read_text().split("\n")
    index = next(n for n, text in enumerate(lines) if "<mj-column>" in text)
    lines[index] = "      <mj-column padding=0>"  # unquoted attribute: MRML fails without a position
    header.write_text("\n".join(lines))
    with pytest.raises(RenderError) as error:
        _render(article, brand, templates_dir=templates)
    assert _where(error).endswith(f"templates/partials/header.mjml.j2:{index + 1}")
    assert "the MJML rendered by newsletter.mjml.j2 does not compile" in error.value.message
    assert "unable to parse next template" in error.value.message  # MRML's own words


def test_unknown_mjml_tag_is_refused(article: Article, brand: Brand, templates: Path) -> None:
    cta = templates / "partials" / "cta.mjml.j2"
    cta.write_text(cta.read_text().replace("mj-button", "mj-buton"))
    line = next(n for n, text in enumerate(cta.read_text().split("\n"), 1) if "<mj-buton" in text)
    with pytest.raises(RenderError) as error:
        _render(article, brand, templates_dir=templates)
    assert "<mj-buton>" in error.value.message
    assert _where(error).endswith(f"templates/partials/cta.mjml.j2:{line}")


def test_unknown_placeholder_and_jinja_in_subject_are_refused(article: Article, brand: Brand, templates: Path) -> None:
    with pytest.raises(RenderError) as error:
        _render(article, brand, subject="Hello {{ name }}")
    assert error.value.where == "subject"
    text = templates / "newsletter.txt.j2"
    text.write_text(text.read_text().replace("Hi {{ first_name }},", "Hi %%firstname%%,"))
    with pytest.raises(RenderError) as error:
        _render(article, brand, templates_dir=templates)
    assert "%%firstname%%" in error.value.message and _where(error).endswith("newsletter.txt.j2")


def test_render_error_is_a_user_error() -> None:
    from newsletter.errors import UserError

    assert issubclass(RenderError, UserError)


# --- the seed article, golden text part ---------------------------------------------------------


def test_seed_campaign_text_matches_golden(seed_article_path: Path, brand: Brand) -> None:
    """The seed's text part, byte for byte.

    After an intended change to the templates or the parsers, regenerate it and read the diff:
        NEWSLETTER_UPDATE_GOLDEN=1 python -m pytest tests/render/test_render.py -k golden -p no:cacheprovider
    """
    out = render_campaign(
        load_article(seed_article_path),
        brand,
        subject="Ketamine assisted psychotherapy, explained",
        preheader="How a new approach helps when conventional treatments have not.",
    )
    if os.environ.get("NEWSLETTER_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(out.text, encoding="utf-8")
    assert out.text == GOLDEN.read_text(encoding="utf-8")
    assert len(out.html.encode("utf-8")) < 100_000
    assert [(link.kind, link.url) for link in out.links] == [("cta", BOOKING), ("honeypot", WEBSITE)]


# --- placeholders come only from the templates (issue 14) ------------------------------------------

EVIL_NAME = "<img src=x onerror=alert(1)>"
EVIL_LINK = "https://evil.example/steal?t=%%token%%"


@pytest.fixture
def evil_article() -> Article:
    """Every string of an article carrying placeholders, as a feed item or a pasted page could."""
    return Article(
        title="Dear %%first_name%%, 50% off",
        slug="evil",
        sections=(
            Section(
                None,
                (
                    "Hello %%first_name%% and %%first_name_html%%.",
                    (
                        f'Note 5 &lt; 10 &amp; more. Click <a href="{EVIL_LINK}">here %%token%%</a> or '
                        '<a href="mailto:e@evil.example?subject=%%token%%">mail us</a>.'
                    ),
                ),
            ),
            Section("Heading %%token%%", ("Body %%token%%.",)),
        ),
        author="Eve %%token%%",
        cta=CallToAction("Reach %%first_name%% <strong>now</strong>.", "Book %%token%%"),
        signoff=SignOff("Eve %%first_name%%", "Role %%token%%"),
    )


def _sendgrid_like(content: str, values: dict[str, str]) -> str:
    """What SendGrid's ``substitutions`` do: replace every occurrence of every key, in turn."""
    for key, value in values.items():
        content = content.replace(key, value)
    return content


def _assert_only_template_placeholders(subject: str, html_part: str, text_part: str) -> None:
    """The token appears only in our own URLs, the name only where the template greets."""
    ours = re.compile(re.escape(PUBLIC) + r"/[cuopw]/TOKEN123")
    for part in (html_part, text_part, subject):
        assert part.count("TOKEN123") == len(ours.findall(part)), part
        assert "evil.example/steal?t=TOKEN123" not in part
    assert "<img src=x" not in html_part and html.escape(EVIL_NAME) in html_part
    assert text_part.count(EVIL_NAME) == 1  # "Hi <name>," and nowhere the content asked for it
    assert EVIL_NAME not in subject


@pytest.mark.parametrize("substitute", [_sendgrid_like, personalise], ids=["sendgrid", "outbox"])
def test_placeholders_in_article_content_are_inert_text(evil_article, brand, substitute) -> None:  # type: ignore[no-untyped-def]
    from newsletter.campaigns import default_preheader
    from newsletter.campaigns.create import default_subject
    from newsletter.render import inert_text

    subject = inert_text(default_subject(evil_article))
    rendered = _render(evil_article, brand, subject=subject, preheader=inert_text(default_preheader(evil_article)))
    values = recipient_values(EVIL_NAME, "TOKEN123")
    sent = [substitute(part, values) for part in (rendered.subject, rendered.html, rendered.text)]
    _assert_only_template_placeholders(*sent)
    # ... and the reader still sees what the author wrote.
    shown_html = html.unescape(re.sub(r"<[^>]+>", " ", sent[1])).replace("\u200b", "")
    shown_text = sent[2].replace("\u200b", "")
    for words in (
        "Dear %%first_name%%, 50% off",
        "Hello %%first_name%% and %%first_name_html%%.",
        "here %%token%%",
        "Heading %%token%%",
        "Eve %%first_name%%",
        "Book %%token%%",
    ):
        assert words in shown_html and words in shown_text, words
    assert sent[0].replace("\u200b", "") == "Dear %%first_name%%, 50% off"
    # The link is registered as written: the redirect leads there with the text "%%token%%".
    assert EVIL_LINK in [link.url for link in rendered.links]


def test_a_content_url_with_percent_encoding_still_works(brand) -> None:  # type: ignore[no-untyped-def]
    story = Article(
        title="T",
        slug="t",
        sections=(Section(None, ('<a href="mailto:a@example.org?subject=Hello%20there">Write</a> to us.',)),),
    )
    rendered = _render(story, brand)
    assert 'href="mailto:a@example.org?subject=Hello&#37;20there"' in rendered.html  # a browser reads %20
    assert "(a@example.org?subject=Hello%\u200b20there)" in rendered.text


def test_the_default_preheader_is_escaped_once(evil_article, brand) -> None:  # type: ignore[no-untyped-def]
    from newsletter.campaigns import default_preheader

    preheader = default_preheader(evil_article)
    assert "5 < 10 & more" in preheader
    rendered = _render(evil_article, brand, preheader=preheader)
    assert "5 &lt; 10 &amp; more" in rendered.html and "&amp;lt;" not in rendered.html


def test_an_html_template_printing_the_raw_first_name_is_refused(tmp_path, article, brand) -> None:  # type: ignore[no-untyped-def]
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    partial = templates / "partials" / "article.mjml.j2"
    partial.write_text(partial.read_text().replace("Hi {{ first_name_html }},", "Hi {{ first_name }},"))
    with pytest.raises(RenderError, match="use first_name_html"):
        _render(article, brand, templates_dir=templates)


def test_a_first_name_set_on_the_preference_page_lands_escaped(engine, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """End to end: a feed-like article with placeholders, a name set through the preference
    page, the outbox's real MIME message: escaped name, no token in the content's link."""
    import email
    from email import policy

    from sqlalchemy import insert, select

    from newsletter.campaigns import create_campaign, import_article, send_campaign
    from newsletter.db import models, session_scope
    from newsletter.tracking.preferences import save_preferences

    page = tmp_path / "evil.html"
    page.write_text(
        f'<h1>Dear %%first_name%%</h1><p>Hello %%first_name%%.</p><p><a href="{EVIL_LINK}">Read</a> '
        "this, then 5 &lt; 10.</p>"
    )
    with session_scope(engine) as session:
        session.execute(
            insert(models.Subscriber),
            [{"email": "ann@example.com", "first_name": "Ann", "status": "active", "attributes": {}}],
        )
        slug = import_article(session, page).row.slug
        first = create_campaign(session, settings, article_slug=slug, segment="all").id
    send_campaign(engine, settings, first)
    with session_scope(engine) as session:
        delivery = session.scalar(select(models.Delivery.id).where(models.Delivery.campaign_id == first))
        save_preferences(session, delivery, first_name=EVIL_NAME, tags=[])
        second = create_campaign(session, settings, article_slug=slug, segment="all").id
    assert send_campaign(engine, settings, second).sent == 1
    (path,) = (Path(settings.outbox_dir) / f"campaign-{second}").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    html_part = message.get_body(("html",)).get_content()
    text_part = message.get_body(("plain",)).get_content()
    assert "<img src=x" not in html_part and "&lt;img src=x onerror=alert(1)&gt;" in html_part
    assert "Hello &#37;&#37;first_name&#37;&#37;." in html_part and "5 &lt; 10" in html_part
    assert "Hello %\u200b%\u200bfirst_name%\u200b%\u200b." in text_part
    token_link = re.compile(r"evil\.example/steal\?t=(?!%%token%%)")
    assert not token_link.search(html_part) and not token_link.search(text_part)
    assert "Dear %\u200b%\u200bfirst_name%\u200b%\u200b" == str(message["Subject"])
