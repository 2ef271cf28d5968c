"""Plain-text helpers for the text part: wrapping, underlined headings, dates."""

from __future__ import annotations

import textwrap
from datetime import date

from newsletter.render.personalise import INERT_MARK

WIDTH = 72


def wrap(text: str, width: int = WIDTH) -> str:
    """Wrap each line of ``text`` at ``width`` without ever breaking a word or a URL.

    Existing line breaks (a ``<br>`` in the source) are kept; blank lines are kept.
    """
    out: list[str] = []
    for line in str(text).split("\n"):
        if not line.strip():
            out.append("")
            continue
        out.extend(textwrap.wrap(line, width=width, break_long_words=False, break_on_hyphens=False))
    return "\n".join(out)


def underline(text: str, char: str = "-", width: int = WIDTH) -> str:
    """``text`` wrapped, followed by a rule as long as its longest line (Setext style)."""
    wrapped = wrap(text, width)
    longest = max((len(line.replace(INERT_MARK, "")) for line in wrapped.split("\n")), default=0)
    return f"{wrapped}\n{char * longest}"


def longdate(value: date | None) -> str:
    """``August 7, 2023`` (no leading zero, English month names whatever the locale)."""
    if value is None:
        return ""
    months = (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    )
    return f"{months[value.month - 1]} {value.day}, {value.year}"
