"""Sanitising: the only place that decides which HTML may reach an email.

Article strings are printed with ``|safe`` by the templates, so every string that came from
markup passes through :func:`sanitise_inline` (nh3, an allow-list) before it is stored, and
every string that came from plain text passes through :func:`escape_text`. Two layers for HTML
sources: :func:`sanitise_document` cleans the whole document first (so the structure walker
never sees a script, an event handler or a hostile URL), then each extracted block is cleaned
again down to the inline set.
"""

from __future__ import annotations

import html
import re

import nh3

INLINE_TAGS: frozenset[str] = frozenset({"a", "em", "strong", "b", "i", "br", "code"})
"""What may appear inside a paragraph or heading string."""

BLOCK_TAGS: frozenset[str] = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "li",
        "blockquote",
        "pre",
        "div",
        "section",
        "article",
        "header",
        "footer",
        "main",
        "figure",
        "figcaption",
        "table",
        "thead",
        "tbody",
        "tr",
        "td",
        "th",
        "dl",
        "dt",
        "dd",
        "hr",
    }
)
"""Structure the walker needs to see; never stored in an article string."""

DROP_WITH_CONTENT: frozenset[str] = frozenset(
    {
        "script",
        "style",
        "iframe",
        "frame",
        "frameset",
        "noscript",
        "template",
        "object",
        "embed",
        "applet",
        "svg",
        "math",
        "canvas",
        "audio",
        "video",
        "title",
        "textarea",
        "select",
        "button",
        "form",
        "nav",
    }
)
"""Elements whose text is code, chrome or widgets, not article prose: removed with their content."""

LINK_SCHEMES: tuple[str, ...] = ("http://", "https://", "mailto:")
IMAGE_SCHEMES: tuple[str, ...] = ("https://",)  # http images trigger mixed-content warnings

_ATTRIBUTES: dict[str, set[str]] = {"a": {"href", "title"}, "img": {"src", "alt"}}


def _filter_attribute(tag: str, attr: str, value: str) -> str | None:
    """Keep only absolute URLs with an allowed scheme: relative links are dead in an inbox."""
    if attr == "href":
        return value if value.strip().lower().startswith(LINK_SCHEMES) else None
    if attr == "src":
        return value if value.strip().lower().startswith(IMAGE_SCHEMES) else None
    return value


_INLINE_CLEANER = nh3.Cleaner(
    tags=set(INLINE_TAGS),
    clean_content_tags=set(DROP_WITH_CONTENT),
    attributes={"a": _ATTRIBUTES["a"]},
    attribute_filter=_filter_attribute,
    url_schemes={"http", "https", "mailto"},
    link_rel=None,
)

_DOCUMENT_CLEANER = nh3.Cleaner(
    tags=set(INLINE_TAGS | BLOCK_TAGS | {"img", "sup"}),
    clean_content_tags=set(DROP_WITH_CONTENT),
    attributes=_ATTRIBUTES,
    attribute_filter=_filter_attribute,
    url_schemes={"http", "https", "mailto"},
    link_rel=None,
)

_TEXT_ONLY_CLEANER = nh3.Cleaner(tags=set(), clean_content_tags=set(DROP_WITH_CONTENT))


def sanitise_inline(fragment: str) -> str:
    """Reduce ``fragment`` to the inline allow-list: what a paragraph string may contain."""
    return _INLINE_CLEANER.clean(fragment).strip()


def sanitise_document(document: str) -> str:
    """Clean a whole HTML document, keeping block structure and images for the walker."""
    return _DOCUMENT_CLEANER.clean(document)


def to_plain_text(fragment: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed (titles, comparisons)."""
    text = html.unescape(_TEXT_ONLY_CLEANER.clean(fragment))
    return re.sub(r"\s+", " ", text).strip()


def escape_text(text: str) -> str:
    """Plain text as safe inline HTML.

    Quotes stay unescaped (``quote=False``): article strings are element content, never
    attribute values, so ``"`` and ``'`` are harmless there and the text part stays readable.
    """
    return html.escape(text, quote=False)
