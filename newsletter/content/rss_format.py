"""RSS 2.0 / RSS 1.0 / Atom feeds: the newest item becomes the article.

``xml.etree`` expands internal entities, so a document with a DTD could be a billion-laughs
bomb; rather than depend on defusedxml we refuse any ``<!DOCTYPE`` or ``<!ENTITY`` before
parsing (no legitimate feed needs one). Elements are matched by local name, so namespaced
fields (``dc:creator``, ``content:encoded``, Atom's default namespace) need no prefix table.

The item's HTML (``content:encoded`` over ``description``; Atom ``content`` over ``summary``)
goes through the HTML path, so it is sanitised exactly like an HTML article.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import date

from newsletter.errors import UserError

from .assemble import CTA_PATTERNS, where
from .dates import parse_date
from .html_format import MAX_DEPTH, article_from_html
from .model import Article
from .sanitise import to_plain_text

_FORBIDDEN = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_ITEM_START = re.compile(r"<(?:[\w.-]+:)?(?:item|entry)[\s>/]")
_EMAIL_WITH_NAME = re.compile(r"\S+@\S+\s*\((.+)\)")


def parse_rss(text: str, source_name: str, *, cta_patterns: Iterable[str] = CTA_PATTERNS) -> Article:
    """Parse a feed and turn its newest item into an Article."""
    root = _parse_xml(text, source_name)
    items = [el for el in root.iter() if _local(el.tag) in {"item", "entry"}]
    if not items:
        raise UserError("the feed has no <item> or <entry>", where(source_name, 1))
    index = _newest(items)
    item, line = items[index], _item_line(text, index)
    title = to_plain_text(_text(item, "title"))
    if not title:
        raise UserError("the newest feed item has no <title>", where(source_name, line))
    return article_from_html(
        _content_html(item, source_name, line),
        source_name,
        source_format="rss",
        title=title,
        author=_author(item),
        published=_published(item, source_name, line),
        cta_patterns=cta_patterns,
        title_line=line,
        content_line=None,  # the item's HTML: a mistake in it names the item's line
    )


def _parse_xml(text: str, source_name: str) -> ET.Element:
    forbidden = _FORBIDDEN.search(text)
    if forbidden:
        line = text.count("\n", 0, forbidden.start()) + 1
        raise UserError(
            f"feeds with <!{forbidden[1].upper()}> declarations are refused (entity expansion is unsafe)",
            where(source_name, line),
        )
    try:
        return ET.fromstring(text.lstrip("\ufeff"))
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 1
        reason = re.sub(r": line \d+, column \d+$", "", str(exc))  # the line is already in `where`
        raise UserError(f"malformed XML: {reason}", where(source_name, line)) from None


def _local(tag: object) -> str:
    """``{namespace}name`` -> ``name``; comments and processing instructions have no str tag."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(item: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in item if _local(child.tag) == name]


def _text(item: ET.Element, *names: str) -> str:
    """The text of the first non-empty child among ``names`` (in order of preference)."""
    for name in names:
        for child in _children(item, name):
            if child.text and child.text.strip():
                return child.text.strip()
    return ""


def _newest(items: list[ET.Element]) -> int:
    """Index of the newest item by date; ties and undated items keep document order."""

    def key(index: int) -> tuple[date, int]:
        try:
            return parse_date(_date_text(items[index])), -index
        except ValueError:
            return date.min, -index

    return max(range(len(items)), key=key)


def _item_line(text: str, index: int) -> int:
    """The line of the ``index``-th item's start tag (ElementTree keeps no line numbers)."""
    for number, match in enumerate(_ITEM_START.finditer(text)):
        if number == index:
            return text.count("\n", 0, match.start()) + 1
    return 1


def _date_text(item: ET.Element) -> str:
    return _text(item, "pubDate", "published", "date", "updated")


def _published(item: ET.Element, source_name: str, line: int) -> date | None:
    value = _date_text(item)
    if not value:
        return None
    try:
        return parse_date(value)
    except ValueError as exc:
        raise UserError(str(exc), where(source_name, line)) from None


def _author(item: ET.Element) -> str | None:
    """dc:creator, Atom author/name, or RSS author ("noah@example.org (Noah Warren)")."""
    creator = _text(item, "creator")
    if creator:
        return creator
    for author in _children(item, "author"):
        name = _text(author, "name")
        if name:
            return name
        if author.text and author.text.strip():
            match = _EMAIL_WITH_NAME.fullmatch(author.text.strip())
            return match[1].strip() if match else author.text.strip()
    return None


def _content_html(item: ET.Element, source_name: str, line: int) -> str:
    """The item body as HTML; Atom ``type`` says whether the text is HTML, XHTML or plain."""
    for name in ("encoded", "content", "description", "summary"):
        for child in _children(item, name):
            kind = (child.get("type") or "html").lower()
            if kind in {"xhtml", "application/xhtml+xml"}:
                if _depth(child) > MAX_DEPTH:  # before _xhtml recurses into it
                    raise UserError(
                        f"the item's XHTML nests more than {MAX_DEPTH} elements deep; an article needs "
                        "a few dozen at most",
                        where(source_name, line),
                    )
                body = "".join(_xhtml(grandchild) for grandchild in child)
            elif kind in {"text", "text/plain"}:
                body = "".join(
                    f"<p>{html.escape(p.strip())}</p>" for p in re.split(r"\n\s*\n", child.text or "") if p.strip()
                )
            else:
                body = child.text or ""
            if body.strip():
                return body
    return ""


def _depth(element: ET.Element) -> int:
    """How deep the elements under ``element`` nest, without recursion (stops past MAX_DEPTH)."""
    deepest, pending = 0, [(element, 0)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        pending.extend((child, depth + 1) for child in node)
    return deepest


def _xhtml(element: ET.Element) -> str:
    """Re-serialise inline XHTML without namespace prefixes (the sanitiser re-checks it all)."""
    attrs = "".join(f' {_local(k)}="{html.escape(v)}"' for k, v in element.attrib.items())
    inner = html.escape(element.text or "", quote=False) + "".join(_xhtml(child) for child in element)
    tag = _local(element.tag)
    return f"<{tag}{attrs}>{inner}</{tag}>" + html.escape(element.tail or "", quote=False)
