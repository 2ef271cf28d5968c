"""Per-recipient placeholders: the only part of a compiled campaign that differs per recipient.

The campaign is rendered once with the placeholders left in it; SendGrid (``substitutions``)
or, locally, :func:`personalise` fills them in. The values never pass through Jinja or MJML.
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
