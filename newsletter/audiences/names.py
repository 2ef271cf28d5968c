"""A person's name as stored: one line of visible text, whatever the CSV or the web form held.

A name travels into email headers (``To: Ann Smith <ann@…>``), into every message's greeting
and into the staff's terminal. A line break in it cannot be written in a header (and is how
header injection is done); other control characters (NUL, ESC, BEL) and format characters
(the right-to-left override U+202E, a stray BOM) are invisible and can disguise the text. So
the CSV import and the preference page both store what :func:`clean_name` returns, and nothing
else. This module uses only the standard library, so any room may import it.
"""

from __future__ import annotations

import unicodedata

__all__ = ["NAME_MAX_LENGTH", "clean_name"]

#: The column width of ``first_name`` and ``last_name``. A longer name is refused by the caller
#: (the import rejects the row, the preference page asks for a shorter one), not cut: a cut
#: name is a wrong name, written to the person in every email.
NAME_MAX_LENGTH = 200

# Zero-width joiner and non-joiner are format characters (Cf) that some scripts need to spell
# a name correctly (Persian, Hindi, emoji sequences); they are harmless in a header.
_KEPT_FORMAT = frozenset("\u200c\u200d")
# Categories dropped: control (Cc, other than the whitespace split() turns into spaces),
# format (Cf), surrogates (Cs: cannot be encoded at all), unassigned (Cn).
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Cn"})


def clean_name(raw: str | None) -> str | None:
    """The name with CR, LF, TAB and other whitespace as single spaces, control and format
    characters dropped, and the ends trimmed; None when nothing visible is left.

    The length is not capped here: see :data:`NAME_MAX_LENGTH`. Linear in the input.
    """
    if not raw:
        return None
    if not raw.isprintable():  # rare: only then look at each character
        raw = "".join(
            ch for ch in raw if ch.isspace() or ch in _KEPT_FORMAT or unicodedata.category(ch) not in _DROPPED
        )
    name = " ".join(raw.split())  # CR, LF, TAB, NBSP, U+2028... → one space
    return name or None
