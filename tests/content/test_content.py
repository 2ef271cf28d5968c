"""The content room: every parser, the seed article exactly, sanitising and error locations."""

from __future__ import annotations

from datetime import date
from html import escape as html_escape
from pathlib import Path

import pytest

from hostile import bounded, merge_bomb
from newsletter.content import (
    Article,
    CallToAction,
    Section,
    SignOff,
    load_article,
    parse_article,
    slugify,
)
from newsletter.content.text_format import strip_footnote_markers
from newsletter.errors import UserError

SEED_HEADINGS = [
    None,
    "The Emergence of Ketamine Assisted Psychotherapy",
    "The Role of Neuroplasticity in Ketamine Assisted Psychotherapy",
    "The Advancement of Ketamine Assisted Therapy",
]


def all_html(article: Article) -> str:
    """Every string a template would print with |safe."""
    parts = [h or "" for h in (s.heading for s in article.sections)] + list(article.paragraphs)
    return "\n".join(parts + ([article.cta.text] if article.cta else []))


def error_of(text: str, fmt: str, name: str = "art") -> UserError:
    with pytest.raises(UserError) as caught:
        parse_article(text, fmt, name)
    return caught.value


# --- the seed article -------------------------------------------------------------------


@pytest.fixture
def seed(seed_article_path: Path) -> Article:
    return load_article(seed_article_path)


def test_seed_metadata(seed: Article) -> None:
    assert seed.title == "The Emergence of Ketamine Assisted Psychotherapy: Transforming Mental Health Treatment"
    assert seed.author == "Noah Warren"
    assert seed.published == date(2023, 8, 7)
    assert seed.source_format == "text"
    assert seed.slug == "the-emergence-of-ketamine-assisted-psychotherapy-transforming-mental-health"


def test_seed_sections(seed: Article) -> None:
    assert [s.heading for s in seed.sections] == SEED_HEADINGS
    assert [len(s.paragraphs) for s in seed.sections] == [2, 2, 1, 3]
    assert seed.sections[0].paragraphs[0].startswith("Mental health conditions like depression")
    # The two closing paragraphs after the double blank line stay in the last section.
    assert seed.sections[-1].paragraphs[-1].startswith("While more research is needed")


def test_seed_debris_is_gone(seed: Article) -> None:
    body = all_html(seed)
    assert "Share this post" not in body
    assert "ketamine assisted psychotherapy" not in [p.strip() for p in seed.paragraphs]
    assert "for the treatment of depression. Esketamine" in body
    assert "depression 4" not in body
    assert "in 1970." in body  # a year before a period is not a footnote


def test_seed_escaping_keeps_quotes(seed: Article) -> None:
    body = all_html(seed)
    assert '"psychedelic state"' in body and "brain's" in body
    assert "<" not in body and "&amp;" not in body


def test_seed_cta_and_signoff(seed: Article) -> None:
    assert seed.cta == CallToAction(
        "Explore the promising realm of ketamine assisted psychotherapy. For those seeking beyond "
        "conventional, we're here to offer innovative pathways to healing. Step forward with hope and "
        "let's journey together towards effective solutions. Connect with Roots Mental Wellness today "
        "\u2013 where breakthroughs await.",
        "Connect today",
    )
    assert not any("Connect with Roots" in p for p in seed.paragraphs)
    assert seed.signoff == SignOff("Noah Warren", "Director of Business Development")
    assert not any("Director of Business Development" in p for p in seed.paragraphs)


def test_seed_round_trips_through_dict(seed: Article) -> None:
    assert Article.from_dict(seed.to_dict()) == seed


# --- text format rules ------------------------------------------------------------------

TEXT = """A Short Guide To Calm

By Jo Smith
Aug 7, 2023

Breathing slowly helps.

quiet room photo

Why Breathing Matters

Slow breathing lowers the heart rate 12.
Lines can be hard-wrapped.

Tweet
Share on Facebook

Book a session with our team today.

Warm regards,
Jo Smith
"""


def test_text_rules_general() -> None:
    article = parse_article(TEXT, "text", "guide.txt")
    assert (article.author, article.published) == ("Jo Smith", date(2023, 8, 7))
    assert article.sections == (
        Section(None, ("Breathing slowly helps.",)),
        Section("Why Breathing Matters", ("Slow breathing lowers the heart rate. Lines can be hard-wrapped.",)),
    )
    assert article.cta == CallToAction("Book a session with our team today.")
    assert article.signoff == SignOff("Jo Smith", None)


def test_no_invitation_means_no_cta() -> None:
    article = parse_article("Title\n\nJust a paragraph.\n\nAnother one ends here.\n", "text", "t.txt")
    assert article.cta is None
    assert article.author is None and article.published is None
    assert article.paragraphs == ("Just a paragraph.", "Another one ends here.")


def test_cta_patterns_are_configurable() -> None:
    text = "Title\n\nIntro.\n\nDrop by our open house this Friday.\n"
    assert parse_article(text, "text", "t.txt").cta is None
    article = parse_article(text, "text", "t.txt", cta_patterns=["drop by"])
    assert article.cta is not None and article.cta.text.startswith("Drop by")


def test_text_is_escaped() -> None:
    article = parse_article("Title\n\n<script>alert(1)</script> & more.\n", "text", "t.txt")
    assert article.paragraphs == ("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more.",)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("for the treatment of depression 4.", "for the treatment of depression."),
        ("as shown in studies [12].", "as shown in studies."),
        ("approved for human use in 1970.", "approved for human use in 1970."),
        ("patients in phase 3.", "patients in phase 3."),
        ("a score of 4 or more.", "a score of 4 or more."),
        ("during COVID 19.", "during COVID 19."),
        ("the dose was raised to 4.", "the dose was raised to 4."),
    ],
)
def test_footnote_markers(before: str, after: str) -> None:
    assert strip_footnote_markers(before) == after


# --- slugs -------------------------------------------------------------------------------


def test_slug_is_stable_ascii_andbounded() -> None:
    title = "Ça va? Anxiety & Depression: Straße to Recovery — A Clinician’s Guide"
    assert slugify(title) == slugify(title) == "ca-va-anxiety-and-depression-strasse-to-recovery-a-clinicians-guide"
    long_slug = slugify("word " * 40)
    assert len(long_slug) <= 80 and not long_slug.endswith("-") and long_slug.endswith("word")
    assert slugify("焦虑") == slugify("焦虑") and slugify("焦虑").startswith("article-")
    assert slugify("焦虑") != slugify("抑郁")


# --- Markdown ----------------------------------------------------------------------------

MARKDOWN = """---
title: Finding Calm
author: Jo Smith
date: 2023-08-07
slug: finding-calm
cta: "[Book a visit](https://clinic.example/book) with *us*"
cta_label: Book now
tags: [ignored]
---
# Finding Calm

Intro with *em*, **strong**, `code` and a [link](https://example.org "T").
<span onclick="steal()">inline</span> <script>alert(1)</script> [bad](javascript:alert(1))

## First Step

- breathe in
- breathe out

### Deeper

Last words.
"""


def test_markdown_with_front_matter() -> None:
    article = parse_article(MARKDOWN, "markdown", "calm.md")
    assert (article.title, article.slug, article.author) == ("Finding Calm", "finding-calm", "Jo Smith")
    assert article.published == date(2023, 8, 7)
    assert [s.heading for s in article.sections] == [None, "First Step", "Deeper"]
    intro = article.sections[0].paragraphs[0]
    assert "<em>em</em>" in intro and "<strong>strong</strong>" in intro and "<code>code</code>" in intro
    assert '<a href="https://example.org" title="T">link</a>' in intro
    assert article.sections[1].paragraphs == ("\u2022 breathe in", "\u2022 breathe out")
    assert article.cta == CallToAction(
        '<a href="https://clinic.example/book">Book a visit</a> with <em>us</em>', "Book now"
    )
    body = all_html(article)
    assert "<script" not in body and "alert(1)</" not in body and "onclick" not in body
    assert 'href="javascript' not in body


def test_markdown_title_from_heading_and_detected_cta() -> None:
    article = parse_article("# Hello *There*\n\nBody.\n\nContact us to get started.\n", "markdown", "h.md")
    assert article.title == "Hello There" and article.slug == "hello-there"
    assert article.paragraphs == ("Body.",)
    assert article.cta == CallToAction("Contact us to get started.")


# --- HTML --------------------------------------------------------------------------------

HTML = """<!doctype html>
<html><head><title>Fallback</title><meta name="author" content="Ana Díaz">
<meta property="article:published_time" content="2024-03-05T09:00:00-05:00">
<style>p { color: red }</style><script>alert("head")</script></head>
<body onload="x()">
<nav><a href="https://clinic.example/">Home</a></nav>
<h1>Real <em>Title</em></h1>
<p onclick="steal()">Intro <a href="javascript:alert(1)">bad</a> and <a href="https://ok.example/?a=1&b=2" target="_blank">good</a>.</p>
<img src="https://cdn.example/a.png" alt="A calm room" onerror="x()"><img src="http://cdn.example/b.png" alt="b">
<iframe src="https://evil.example">frame text</iframe>
<h2>Section &amp; One</h2>
<p>Depression<sup><a href="#fn1">1</a></sup> is common.</p>
<ul><li>First</li><li><p>Second <strong>item</strong></p></li></ul>
<p>Share this post</p>
<p>Schedule a call today.</p>
</body></html>
"""


def test_html_structure() -> None:
    article = parse_article(HTML, "html", "page.html")
    assert article.title == "Real Title"
    assert (article.author, article.published) == ("Ana Díaz", date(2024, 3, 5))
    assert article.sections == (
        Section(None, ('Intro bad and <a href="https://ok.example/?a=1&amp;b=2">good</a>.',)),
        Section("Section &amp; One", ("Depression is common.", "\u2022 First", "\u2022 Second <strong>item</strong>")),
    )
    assert article.images == ({"src": "https://cdn.example/a.png", "alt": "A calm room"},)
    assert article.cta == CallToAction("Schedule a call today.")


def test_html_sanitising_drops_dangerous_things() -> None:
    body = all_html(parse_article(HTML, "html", "page.html"))
    for forbidden in (
        "<script",
        "alert",
        "onclick",
        "onload",
        "onerror",
        "javascript:",
        "iframe",
        "frame text",
        "color: red",
        "target",
        "Home",
        "Fallback",
        "Share this",
    ):
        assert forbidden not in body


def test_html_title_falls_back_to_title_element() -> None:
    article = parse_article("<title>From Head</title><p>Only text.</p>", "html", "t.html")
    assert article.title == "From Head"


# --- RSS / Atom --------------------------------------------------------------------------

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>Clinic Blog</title>
<item><title>Older Post</title><pubDate>Mon, 01 May 2023 10:00:00 +0000</pubDate><description>Old.</description></item>
<item>
  <title>Newest &amp; Best</title>
  <dc:creator>Noah Warren</dc:creator>
  <pubDate>Mon, 07 Aug 2023 10:00:00 -0400</pubDate>
  <description>Short summary.</description>
  <content:encoded><![CDATA[<p>Para <script>x()</script><a href="https://a.example" onclick="y()">link</a>.</p>
  <h2>More</h2><p>Two.</p><p>Get in touch with our team.</p>]]></content:encoded>
</item>
</channel></rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Clinic</title>
  <entry>
    <title>Atom Entry</title>
    <author><name>Jo Smith</name></author>
    <published>2024-01-02T08:00:00Z</published>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Hello <em>world</em>.</p></div></content>
  </entry>
</feed>
"""


def test_rss_newest_item() -> None:
    article = parse_article(RSS, "rss", "feed.xml")
    assert (article.title, article.slug) == ("Newest & Best", "newest-and-best")
    assert (article.author, article.published, article.source_format) == ("Noah Warren", date(2023, 8, 7), "rss")
    assert [s.heading for s in article.sections] == [None, "More"]
    assert article.paragraphs == ('Para <a href="https://a.example">link</a>.', "Two.")
    assert article.cta == CallToAction("Get in touch with our team.")


def test_atom_entry() -> None:
    article = parse_article(ATOM, "rss", "feed.atom")
    assert (article.title, article.author, article.published) == ("Atom Entry", "Jo Smith", date(2024, 1, 2))
    assert article.paragraphs == ("Hello <em>world</em>.",)


# --- load_article and error locations ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("a.txt", "T\n\nBody.\n", "text"),
        ("a.md", "# T\n\nBody.\n", "markdown"),
        ("a.markdown", "# T\n\nBody.\n", "markdown"),
        ("a.htm", "<h1>T</h1><p>Body.</p>", "html"),
        ("a.HTML", "<h1>T</h1><p>Body.</p>", "html"),
        ("a.rss", RSS, "rss"),
        ("a.xml", ATOM, "rss"),
    ],
)
def test_load_article_picks_parser_by_extension(tmp_path: Path, name: str, content: str, fmt: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert load_article(path).source_format == fmt


def test_load_article_accepts_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffTitle\n\nBody.\n".encode("utf-8"))
    assert load_article(path).title == "Title"


def test_unknown_extension_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "article.docx"
    path.write_text("x")
    with pytest.raises(UserError) as caught:
        load_article(path)
    assert caught.value.where == str(path) and ".docx" in caught.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        load_article(tmp_path / "nope.txt")
    assert caught.value.where == str(tmp_path / "nope.txt")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Title\n\nCaf\u00e9 one.\n".encode("latin-1"))
    with pytest.raises(UserError) as caught:
        load_article(path)
    assert caught.value.where == f"{path}:3" and "UTF-8" in caught.value.message


def test_format_names() -> None:
    assert parse_article("# T\n\nBody.\n", "md", "a.md").source_format == "markdown"
    assert error_of("x", "docx", "a.docx").where == "a.docx"


@pytest.mark.parametrize(
    ("text", "fmt", "line", "words"),
    [
        ("", "text", 1, "empty"),
        ("  \n\n \n", "text", 1, "empty"),
        ("Title\n\nNoah Warren\nAugust 47, 2023\n\nBody.\n", "text", 4, "date"),
        ("Title\n\n2023-13-01\n\nBody.\n", "text", 3, "date"),
        ("Title\n\nNoah Warren\nAugust 7, 2023\n", "text", 5, "no body"),
        ("x" * 250 + "\n\nBody.\n", "text", 1, "title"),
        ("", "markdown", 1, "empty"),
        ("Just a paragraph, no heading.\n", "markdown", 1, "no title"),
        ("---\ntitle: T\ndate: [unclosed\n---\nBody.\n", "markdown", 3, "YAML"),
        ("---\ntitle: T\nauthor: A\ndate: someday\n---\nBody.\n", "markdown", 4, "date"),
        ("---\ntitle: T\n\nBody never closes\n", "markdown", 1, "never closed"),
        ("---\n- a list\n---\nBody.\n", "markdown", 2, "key: value"),
        ("---\ntitle: T\nslug: Not A Slug\n---\nBody.\n", "markdown", 3, "slug"),
        ("---\ntitle: [1, 2]\n---\nBody.\n", "markdown", 2, "title"),
        ("<p>No title anywhere.</p>", "html", 1, "no title"),
        (
            '<html><head><meta name="date" content="not a date">\n</head><body><h1>T</h1><p>x</p></body></html>',
            "html",
            1,
            "date",
        ),
        ("<h1>Title only</h1>", "html", 1, "no body"),
        ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">]>\n<rss/>', "rss", 2, "DOCTYPE"),
        ('<rss>\n<!ENTITY lol "lol">\n</rss>', "rss", 2, "ENTITY"),
        ("<rss>\n<channel>\n<item></channel></rss>", "rss", 3, "malformed XML"),
        ("<rss><channel></channel></rss>", "rss", 1, "no <item>"),
        ("<rss>\n<channel>\n<item><description>x</description></item></channel></rss>", "rss", 3, "no <title>"),
        (
            "<rss>\n<channel>\n<item><title>T</title><pubDate>Someday 10:00</pubDate>"
            "<description>x</description></item></channel></rss>",
            "rss",
            3,
            "date",
        ),
    ],
)
def test_errors_name_file_and_line(text: str, fmt: str, line: int, words: str) -> None:
    error = error_of(text, fmt, "article.src")
    assert error.where == f"article.src:{line}"
    assert words.lower() in error.message.lower()


# --- hostile input (issue 14) --------------------------------------------------------------------


def _nested(depth: int, tag: str = "div", sep: str = "") -> str:
    return f"<{tag}>{sep}" * depth + "<p>Deep inside.</p>" + f"</{tag}>" * depth


def test_a_paragraph_in_64k_nested_divs_is_refused_in_bounded_time(tmp_path: Path) -> None:
    path = tmp_path / "deep.html"
    path.write_text("<html><head><title>Deep</title></head><body>" + _nested(64_000) + "</body></html>")
    with pytest.raises(UserError, match="nests more than 1000 elements deep") as caught:
        bounded(lambda: load_article(path))  # was 57-200 s (quadratic in the depth)
    assert caught.value.where == f"{path}:1"


def test_the_depth_error_names_the_line_and_the_limit_is_1000() -> None:
    head = "<html>\n<body>\n<h1>Title</h1>\n"
    assert parse_article(head + _nested(1000, sep="\n"), "html", "ok.html").paragraphs == ("Deep inside.",)
    with pytest.raises(UserError) as caught:
        parse_article(head + _nested(1001, sep="\n"), "html", "deep.html")
    assert caught.value.where == "deep.html:1004"  # the 1001st <div>: line 4 holds the first


@pytest.mark.parametrize(
    "markup",
    [
        "<h1>Title</h1>" + "<p>an unclosed paragraph " * 3000,
        "<h1>Title</h1><ul>" + "<li>an unclosed item " * 3000 + "</ul>",
        "<h1>Title</h1>" + "<p>text<br><img src='https://x.example/i.png'><hr>" * 3000,
        "<h1>Title</h1><script>" + "<div>" * 3000 + "</script><!--" + "<div>" * 3000 + "--><p>Body.</p>",
        "<h1>Title</h1><p>Chart:</p><svg>" + '<path d="M0 0"/>' * 3000 + "</svg><p>Body.</p>",
    ],
    ids=["p", "li", "void", "script-and-comment", "svg-paths"],
)
def test_untidy_but_ordinary_html_is_not_refused(markup: str) -> None:
    assert parse_article(markup, "html", "untidy.html").title == "Title"


def test_div_self_closing_still_nests_and_is_counted() -> None:
    """HTML ignores the slash on <div/>: the sanitiser nests them, so the limit counts them."""
    with pytest.raises(UserError, match="nests more than"):
        bounded(lambda: parse_article("<h1>T</h1>" + "<div/>" * 5000 + "<p>x</p>", "html", "slash.html"))


def test_deep_markup_in_a_feed_item_is_refused_naming_the_item() -> None:
    content = html_escape(_nested(50_000, "blockquote"))
    feed = (
        '<?xml version="1.0"?>\n<rss version="2.0"><channel><title>F</title>\n'
        f"<item>\n<title>Deep</title>\n<description>{content}</description>\n</item>\n</channel></rss>"
    )
    with pytest.raises(UserError, match=r"nests more than 1000 elements deep;.*\(line 1 of its HTML\)") as caught:
        bounded(lambda: parse_article(feed, "rss", "feed.xml"))
    assert caught.value.where == "feed.xml:3"


def test_deep_xhtml_in_an_atom_entry_is_refused_not_a_recursion_error() -> None:
    body = _nested(5000)
    feed = (
        '<?xml version="1.0"?>\n<feed xmlns="http://www.w3.org/2005/Atom"><title>F</title>\n<entry>\n'
        f'<title>Deep</title><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">{body}</div></content>'
        "\n</entry></feed>"
    )
    with pytest.raises(UserError, match="XHTML nests more than 1000") as caught:
        bounded(lambda: parse_article(feed, "rss", "feed.atom"))
    assert caught.value.where == "feed.atom:3"


def test_deep_raw_html_in_markdown_is_refused() -> None:
    with pytest.raises(UserError, match="nests more than 1000"):
        bounded(lambda: parse_article("# Title\n\n" + _nested(64_000) + "\n", "markdown", "deep.md"))


def test_a_wide_document_just_under_the_limit_parses_in_linear_time() -> None:
    """999 nested blocks, 40 times over (~400 KB): the walker no longer scans its stack."""
    block = "<div>" * 999 + "<p>Hello there.</p>" + "</div>" * 999
    article = bounded(lambda: parse_article("<h1>T</h1>" + block * 40, "html", "wide.html"), seconds=30, megabytes=256)
    assert len(article.paragraphs) == 40


def _laughs_front_matter() -> str:
    """Front matter whose merge keys PyYAML would copy 9**9 times over (~500 bytes)."""
    return "---\ntitle: Bomb\n" + merge_bomb() + "---\n\nBody.\n"


def test_a_yaml_alias_bomb_in_front_matter_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.md"
    path.write_text(_laughs_front_matter())
    with pytest.raises(UserError) as caught:
        bounded(lambda: load_article(path))  # what `article import bomb.md` runs
    assert caught.value.where == f"{path}:4" and "aliases (*m0) are not allowed" in caught.value.message


def test_front_matter_dates_are_read_by_our_parser_with_a_line() -> None:
    article = parse_article("---\ntitle: T\ndate: 2023-08-07\n---\n\nBody.\n", "markdown", "a.md")
    assert article.published == date(2023, 8, 7)
    with pytest.raises(UserError) as caught:  # PyYAML raised a bare ValueError here (a traceback)
        parse_article("---\ntitle: T\ndate: 2023-13-07\n---\n\nBody.\n", "markdown", "a.md")
    assert caught.value.where == "a.md:3"
