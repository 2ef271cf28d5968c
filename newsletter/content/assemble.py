"""What every format shares once its blocks are extracted: widgets out, CTA, sections, slug.

Parsers reduce a source to a flat list of :class:`Block` (headings and paragraphs, already safe
inline HTML) and hand it to :func:`assemble_article`, so the rules for the closing invitation
and for grouping sections are the same whatever the source format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from newsletter.errors import UserError

from .model import Article, CallToAction, Section, SignOff
from .sanitise import to_plain_text
from .slug import slugify

DEFAULT_CTA_LABEL = "Connect today"

CTA_PATTERNS: tuple[str, ...] = (
    "connect with",
    "connect today",
    "book a",
    "book an",
    "book your",
    "schedule a",
    "schedule an",
    "schedule your",
    "contact us",
    "get in touch",
    "call us",
    "reach out",
    "request an appointment",
    "request a consultation",
)
"""Phrases that make the last paragraph the closing invitation (case-insensitive, whole words)."""

SHARE_PHRASES: frozenset[str] = frozenset(
    {
        "share",
        "share this",
        "share this post",
        "share this article",
        "share this page",
        "share on facebook",
        "share on twitter",
        "share on x",
        "share on linkedin",
        "share via email",
        "share by email",
        "tweet",
        "tweet this",
        "pin it",
        "email this",
        "copy link",
        "print this post",
        "print",
        "like this",
        "follow us",
    }
)
"""Lines left behind by social-share widgets when a web page is copied as text."""


@dataclass(frozen=True)
class Block:
    """One extracted block: a section heading or a paragraph, as safe inline HTML."""

    kind: Literal["heading", "paragraph"]
    html: str


def where(source_name: str, line: int) -> str:
    """The ``where`` of a :class:`UserError`: the file and the line to look at."""
    return f"{source_name}:{line}"


def is_share_widget(text: str) -> bool:
    """Whether a line or paragraph is only a share-widget label ("Share this post", "Tweet")."""
    normalised = re.sub(r"[\s:!.\u2026]+$", "", text.strip().lower())
    return re.sub(r"\s+", " ", normalised) in SHARE_PHRASES


def is_invitation(html_text: str, patterns: Iterable[str] = CTA_PATTERNS) -> bool:
    """Whether a paragraph invites the reader to act (one of ``patterns``, whole words)."""
    text = to_plain_text(html_text).lower()
    for phrase in patterns:
        words = r"\s+".join(re.escape(word) for word in phrase.lower().split())
        if words and re.search(rf"\b{words}\b", text):
            return True
    return False


def assemble_article(
    blocks: Sequence[Block],
    *,
    title: str,
    source_name: str,
    source_format: str,
    slug: str | None = None,
    author: str | None = None,
    published: date | None = None,
    cta: CallToAction | None = None,
    cta_label: str | None = None,
    signoff: SignOff | None = None,
    images: Sequence[dict[str, str]] = (),
    cta_patterns: Iterable[str] = CTA_PATTERNS,
    body_line: int = 1,
) -> Article:
    """Build the :class:`Article`: the one place sections and the CTA are decided.

    ``cta`` given (front matter) wins; otherwise the last paragraph becomes the CTA when it
    is an invitation, and leaves the body. ``body_line`` is where an empty body is reported.
    """
    if not title.strip():
        raise UserError("the article has no title", where(source_name, 1))
    kept = [b for b in blocks if not (b.kind == "paragraph" and is_share_widget(to_plain_text(b.html)))]
    if cta is None:
        kept, cta = _take_cta(kept, cta_patterns, cta_label or DEFAULT_CTA_LABEL)
    elif cta_label:
        cta = CallToAction(cta.text, cta_label)
    sections = _group_sections(kept)
    if not sections:
        raise UserError("the article has no body paragraphs", where(source_name, body_line))
    return Article(
        title=title.strip(),
        slug=slug or slugify(title),
        sections=sections,
        author=author,
        published=published,
        cta=cta,
        signoff=signoff,
        source_format=source_format,
        images=tuple(images),
    )


def _take_cta(blocks: list[Block], patterns: Iterable[str], label: str) -> tuple[list[Block], CallToAction | None]:
    """Split off the last paragraph when it is an invitation; ``None`` lets the renderer default."""
    for index in range(len(blocks) - 1, -1, -1):
        if blocks[index].kind == "paragraph":
            if is_invitation(blocks[index].html, patterns):
                return blocks[:index] + blocks[index + 1 :], CallToAction(blocks[index].html, label)
            break
    return blocks, None


def _group_sections(blocks: Iterable[Block]) -> tuple[Section, ...]:
    """Headings open sections; paragraphs before the first heading form the opening section.

    Sections left without paragraphs (a heading followed directly by another, or a heading
    whose only paragraph was the CTA) are dropped: an empty heading reads as a mistake.
    """
    groups: list[tuple[str | None, list[str]]] = [(None, [])]
    for block in blocks:
        if block.kind == "heading":
            groups.append((block.html, []))
        else:
            groups[-1][1].append(block.html)
    return tuple(Section(heading, tuple(paras)) for heading, paras in groups if paras)
