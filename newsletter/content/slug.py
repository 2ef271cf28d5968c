"""Slugs: the article's stable name in URLs (``/a/{slug}``) and in the database.

The same title always gives the same slug (no counters, no dates), so re-importing an article
finds the same row and old links keep working.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_SLUG_LENGTH = 80

# Letters NFKD does not decompose into ASCII; without these "Straße" would become "strae".
_TRANSLITERATE = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "ł": "l",
        "Ł": "L",
        "þ": "th",
        "Þ": "Th",
        "ı": "i",
    }
)
_SLUG_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def slugify(title: str, max_length: int = MAX_SLUG_LENGTH) -> str:
    """ASCII, lowercase, hyphenated; cut at a word boundary to at most ``max_length``.

    A title with no Latin letters or digits at all gets ``article-<hash>``: still stable,
    still ASCII.
    """
    text = unicodedata.normalize("NFKD", title.translate(_TRANSLITERATE))
    text = re.sub(r"['\u2019]", "", text)  # "brain's" -> "brains", not "brain-s"
    text = text.replace("&", " and ")
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    text = _cut_at_word(text, max_length)
    if not text:
        digest = hashlib.sha256(unicodedata.normalize("NFC", title.strip()).encode("utf-8"))
        text = f"article-{digest.hexdigest()[:12]}"
    return text


def _cut_at_word(slug: str, max_length: int) -> str:
    if len(slug) <= max_length:
        return slug
    head = slug[: max_length + 1]  # one extra: a hyphen right after the limit is a clean cut
    cut = head.rfind("-")
    return (head[:cut] if cut > 0 else slug[:max_length]).strip("-")


def is_valid_slug(value: str) -> bool:
    """Whether a slug given by the author (front matter) is usable as-is in a URL."""
    return len(value) <= MAX_SLUG_LENGTH and _SLUG_RE.fullmatch(value) is not None
