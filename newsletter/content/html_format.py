"""HTML articles: sanitise first, then walk the clean markup into title, sections, paragraphs.

The order matters: :func:`sanitise_document` (nh3) runs before the walker, so the walker only
ever sees allow-listed tags and attributes, and each extracted block is cleaned once more down
to the inline set. Scripts, styles, iframes, event handlers and non-http(s)/mailto URLs never
survive. The stdlib ``html.parser`` is enough here: the markup it walks is already normalised
by nh3's HTML5 parser, so BeautifulSoup would add nothing.

Mapping: ``<h1>`` is the title (else ``<title>``); ``<h2>``/``<h3>`` open sections; ``<h4>``-
``<h6>`` become bold paragraphs; ``<p>``, ``<blockquote>``, table cells and loose text become
paragraphs; each ``<li>`` becomes a paragraph prefixed with "• "; ``<img>`` goes to
``Article.images`` when its ``src`` is absolute https; numeric ``<sup>`` footnote references
are dropped.

Bounded work: a document nested deeper than :data:`MAX_DEPTH` elements is refused before the
sanitiser sees it (:mod:`.html_depth` says why), and the walker keeps counters instead of
scanning its stack of open blocks, so its time is linear in the size of the document. The raw
document's head (title, author, date) is read apart, by :mod:`.html_head`.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser

from newsletter.errors import UserError

from .assemble import CTA_PATTERNS, Block, assemble_article, where
from .dates import parse_date
from .html_depth import MAX_DEPTH, check_depth
from .html_head import read_head
from .model import Article, CallToAction
from .sanitise import (
    BLOCK_TAGS,
    INLINE_TAGS,
    escape_text,
    sanitise_document,
    sanitise_inline,
    to_plain_text,
)

__all__ = ["MAX_DEPTH", "ExtractedHtml", "article_from_html", "extract_blocks", "parse_html"]

BULLET = "\u2022 "
_CLASSIFYING = frozenset({"h1", "h2", "h3", "h4", "h5", "h6", "li"})
_FOOTNOTE_REF = re.compile(r"\s*\[?\d{1,3}\]?\s*")


@dataclass
class ExtractedHtml:
    """What the walker found: raw blocks (``h1`` kept apart for the title) and images."""

    blocks: list[tuple[str, str]] = field(default_factory=list)  # (kind, safe html); kind: h1|heading|paragraph
    images: list[dict[str, str]] = field(default_factory=list)


def parse_html(text: str, source_name: str, *, cta_patterns: Iterable[str] = CTA_PATTERNS) -> Article:
    """Parse a standalone HTML article; metadata may come from ``<meta>`` tags."""
    check_depth(text, source_name)  # first: a refusal should not wait for a full read of the head
    head = read_head(text)
    published = None
    if head.date_text:
        try:
            published = parse_date(head.date_text)
        except ValueError as exc:
            raise UserError(str(exc), where(source_name, head.date_line)) from None
    return article_from_html(
        text,
        source_name,
        source_format="html",
        fallback_title=head.title,
        author=head.author,
        published=published,
        cta_patterns=cta_patterns,
    )


def article_from_html(
    document: str,
    source_name: str,
    *,
    source_format: str,
    title: str | None = None,
    fallback_title: str | None = None,
    slug: str | None = None,
    author: str | None = None,
    published: date | None = None,
    cta: CallToAction | None = None,
    cta_label: str | None = None,
    cta_patterns: Iterable[str] = CTA_PATTERNS,
    title_line: int = 1,
    content_line: int | None = 1,
) -> Article:
    """The HTML path shared by HTML, Markdown (rendered) and RSS (item content) sources.

    ``title`` given (front matter, feed item): an ``<h1>`` repeating it is dropped and any
    other ``<h1>`` becomes a section heading. Otherwise the first ``<h1>`` is the title, then
    ``fallback_title`` (the ``<title>`` element).
    ``content_line`` is the file line ``document`` starts on when its lines are the file's
    (an HTML file); None when they are not (rendered Markdown, a feed item's content), and a
    mistake in it then names ``title_line``.
    """
    check_depth(document, source_name, content_line=content_line, fallback_line=title_line)
    extracted = extract_blocks(document)
    title, blocks = _resolve_title(extracted.blocks, title, fallback_title)
    if not title:
        raise UserError("the article has no title (no <h1>, no <title>)", where(source_name, title_line))
    return assemble_article(
        blocks,
        title=title,
        source_name=source_name,
        source_format=source_format,
        slug=slug,
        author=author,
        published=published,
        cta=cta,
        cta_label=cta_label,
        images=extracted.images,
        cta_patterns=cta_patterns,
    )


def _resolve_title(
    raw: list[tuple[str, str]], title: str | None, fallback: str | None
) -> tuple[str | None, list[Block]]:
    blocks: list[Block] = []
    for kind, fragment in raw:
        if kind == "h1":
            text = to_plain_text(fragment)
            if title is None:
                title = text
                continue
            if text.casefold() == title.casefold():
                continue
            kind = "heading"
        blocks.append(Block("heading" if kind == "heading" else "paragraph", fragment))
    return title or (fallback or None), blocks


def extract_blocks(document: str) -> ExtractedHtml:
    """Sanitise ``document`` and walk it into blocks of safe inline HTML."""
    walker = _BlockWalker()
    walker.feed(sanitise_document(document))
    walker.close()
    return walker.result


class _BlockWalker(HTMLParser):
    """Collects inline content between block boundaries; the innermost block decides its kind."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.result = ExtractedHtml()
        self._stack: list[str] = []  # the open block elements
        self._open: Counter[str] = Counter()  # how many of each are open: "is a <pre> open?" in O(1)
        self._kinds: list[str | None] = []  # per open block, the innermost h1-h6/li at or under it
        self._buffer: list[str] = []
        self._anchors: list[bool] = []  # whether each open <a> was emitted (it had an href)
        self._sup_depth = 0
        self._sup_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in BLOCK_TAGS:
            self._flush()
            if tag != "hr":
                self._push(tag)
        elif tag == "img":
            self._image(values)
        elif tag == "sup":
            self._sup_depth += 1
        elif self._sup_depth:
            return  # a superscript keeps only its text (links inside footnote refs go too)
        elif tag == "br":
            self._buffer.append("<br>")
        elif tag == "a":
            self._open_anchor(values)
        elif tag in INLINE_TAGS:
            self._buffer.append(f"<{tag}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in {"br", "img", "hr"}:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in BLOCK_TAGS:
            self._flush()
            if self._open[tag] > 0:
                while self._pop() != tag:
                    pass
        elif tag == "sup" and self._sup_depth:
            self._close_sup()
        elif self._sup_depth:
            return
        elif tag == "a" and self._anchors:
            if self._anchors.pop():
                self._buffer.append("</a>")
        elif tag in INLINE_TAGS and tag != "br":
            self._buffer.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self._sup_depth:
            self._sup_text.append(data)
        elif self._open["pre"]:
            self._buffer.append(escape_text(data).replace("\n", "<br>"))
        else:
            self._buffer.append(escape_text(re.sub(r"\s+", " ", data)))

    def close(self) -> None:
        super().close()
        self._flush()

    def _push(self, tag: str) -> None:
        self._stack.append(tag)
        self._open[tag] += 1
        self._kinds.append(tag if tag in _CLASSIFYING else (self._kinds[-1] if self._kinds else None))

    def _pop(self) -> str:
        tag = self._stack.pop()
        self._open[tag] -= 1
        self._kinds.pop()
        return tag

    def _open_anchor(self, values: dict[str, str]) -> None:
        href = values.get("href")
        self._anchors.append(bool(href))
        if href:
            title = f' title="{html.escape(values["title"])}"' if values.get("title") else ""
            self._buffer.append(f'<a href="{html.escape(href)}"{title}>')

    def _close_sup(self) -> None:
        """A superscript number is a footnote reference: drop it; keep any other superscript."""
        self._sup_depth -= 1
        if self._sup_depth == 0:
            text = "".join(self._sup_text)
            self._sup_text = []
            if not _FOOTNOTE_REF.fullmatch(text):
                self._buffer.append(escape_text(text))

    def _image(self, values: dict[str, str]) -> None:
        src = values.get("src", "")
        if src.startswith("https://"):
            self.result.images.append({"src": src, "alt": values.get("alt", "")})

    def _flush(self) -> None:
        if not self._buffer:
            return  # every block boundary flushes: most have nothing to say, and nh3 is not free
        fragment = "".join(self._buffer)
        self._buffer = []
        if not fragment.strip():
            return
        if not self._open["pre"]:
            fragment = re.sub(r" {2,}", " ", fragment)
        fragment = sanitise_inline(re.sub(r"^(\s|<br>)+|(\s|<br>)+$", "", fragment))
        if to_plain_text(fragment):
            self.result.blocks.append(self._classify(fragment))

    def _classify(self, fragment: str) -> tuple[str, str]:
        """The innermost heading or list item decides (kept per open block: no stack scan)."""
        tag = self._kinds[-1] if self._kinds else None
        if tag == "h1":
            return "h1", fragment
        if tag in {"h2", "h3"}:
            return "heading", fragment
        if tag in {"h4", "h5", "h6"}:
            return "paragraph", f"<strong>{fragment}</strong>"
        if tag == "li":
            return "paragraph", BULLET + fragment
        return "paragraph", fragment
