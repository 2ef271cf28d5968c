"""The seed plain-text format: an article copied from the clinic's web page.

Layout::

    Title line

    Author line
    Date line ("August 7, 2023")

    Paragraphs separated by blank lines, with short Title-Case heading lines between them.
    The last paragraph may be the closing invitation (the CTA).

    Name
    Role

Copying a web page as text leaves debris behind; these general rules remove it (none matches
one article's exact strings):

* **share widgets** - a line that is only a share label (``SHARE_PHRASES``: "Share this post",
  "Tweet", ...) is dropped wherever it stands, even inside a block;
* **image alt text** - a block of one line, all lowercase, with no punctuation at all and at
  most ten words, is the alt text of an image that did not survive the copy: dropped;
* **footnote markers** - a superscript reference flattened into the text: a number of one to
  three digits standing alone after a lowercase word (three letters or more, not a counting
  word such as "phase" or "page") right before the sentence's final ``.``/``!``/``?``, or any
  bracketed ``[4]``, is removed: "depression 4." becomes "depression.". Years ("1970.")
  have four digits and names ("COVID 19.") are capitalised, so neither is touched.

Structure rules:

* a **heading** is a one-line block of at most 14 words / 100 characters, starting with a
  capital, not ending in punctuation, Title-Case-ish (at least two thirds of its words of
  four letters or more capitalised), and followed by another block;
* the **sign-off** is the last block when it is one or two short lines: a name (one to five
  capitalised words) and an optional role; a leading valediction ("Warm regards,") is skipped;
* every other block is a **paragraph**; its lines are joined with spaces (hard-wrapped text
  is fine). An extra blank line is only a wider paragraph break, not a new section: the
  model has no heading-less section after the opening one;
* the **CTA** is decided by :func:`newsletter.content.assemble.assemble_article`.

Paragraph and heading strings are escaped with ``html.escape(quote=False)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from newsletter.errors import UserError

from .assemble import CTA_PATTERNS, Block, assemble_article, is_share_widget, where
from .dates import parse_date
from .model import Article, SignOff
from .sanitise import escape_text

MAX_TITLE_LENGTH = 200

# Words after which a number is a quantity, not a footnote ("phase 3.", "page 12.").
COUNTING_WORDS: frozenset[str] = frozenset(
    {
        "phase",
        "stage",
        "step",
        "level",
        "grade",
        "type",
        "page",
        "pages",
        "chapter",
        "part",
        "section",
        "version",
        "number",
        "volume",
        "issue",
        "figure",
        "table",
        "item",
        "items",
        "age",
        "aged",
        "ages",
        "days",
        "weeks",
        "months",
        "years",
        "hours",
        "minutes",
        "session",
        "sessions",
        "dose",
        "doses",
        "round",
        "class",
        "category",
        "tier",
        "room",
        "suite",
        "floor",
        "unit",
        "score",
        "scored",
        "rated",
        "rating",
        "than",
        "about",
        "around",
        "approximately",
        "nearly",
        "only",
        "just",
        "least",
        "most",
        "from",
        "under",
        "over",
        "were",
        "was",
        "are",
        "with",
        "into",
        "plus",
        "minus",
        "times",
        "equals",
        "total",
        "question",
        "lesson",
        "module",
        "week",
        "month",
        "year",
        "day",
        "hour",
        "minute",
        "top",
        "and",
        "the",
        "for",
        "out",
        "down",
        "gen",
        "generation",
        "verse",
        "psalm",
    }
)
SMALL_WORDS: frozenset[str] = frozenset(
    {
        "a",
        "an",
        "and",
        "as",
        "at",
        "but",
        "by",
        "for",
        "from",
        "in",
        "into",
        "of",
        "on",
        "or",
        "the",
        "to",
        "vs",
        "with",
        "via",
        "over",
        "than",
        "that",
        "upon",
    }
)
_FOOTNOTE = re.compile(r"\b([^\W\d_]{3,}) \d{1,3}(?=[.!?][\"'\u201d\u2019)]?(?:\s|$))")
_BRACKET_FOOTNOTE = re.compile(r"\s?\[\d{1,3}\](?=[\s.,;:!?]|$)")
_PUNCTUATION = re.compile(r"[.,;:!?\"()\u201c\u201d]")


@dataclass(frozen=True)
class _Chunk:
    """A run of non-blank lines with the file line number of its first line."""

    line: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def parse_text(text: str, source_name: str, *, cta_patterns: Iterable[str] = CTA_PATTERNS) -> Article:
    """Parse the seed plain-text format (see the module docstring for every rule)."""
    chunks = _chunks(text)
    if not chunks:
        raise UserError("the article is empty", where(source_name, 1))
    title = _title(chunks[0], source_name)
    meta, body = _split_metadata(chunks)
    author, published = _read_metadata(meta, source_name)
    body = _without_share_lines(body)
    signoff, body = _take_signoff(body)
    return assemble_article(
        _body_blocks(body),
        title=title,
        source_name=source_name,
        source_format="text",
        author=author,
        published=published,
        signoff=signoff,
        cta_patterns=cta_patterns,
        body_line=(meta[-1][0] + 1) if meta else chunks[0].line + 1,
    )


def _chunks(text: str) -> list[_Chunk]:
    """Split on blank lines, keeping line numbers for error messages."""
    chunks: list[_Chunk] = []
    current: list[str] = []
    start = 0
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, raw in enumerate(lines + [""], start=1):
        line = re.sub(r"\s+", " ", raw).strip()
        if line:
            start = start if current else number
            current.append(line)
        elif current:
            chunks.append(_Chunk(start, tuple(current)))
            current = []
    return chunks


def _title(first: _Chunk, source_name: str) -> str:
    title = first.lines[0]
    if len(title) > MAX_TITLE_LENGTH:
        raise UserError(
            f"the first line should be the title, but it is {len(title)} characters long "
            f"(at most {MAX_TITLE_LENGTH}); put the title alone on the first line",
            where(source_name, first.line),
        )
    return title


def _split_metadata(chunks: list[_Chunk]) -> tuple[list[tuple[int, str]], list[_Chunk]]:
    """The author/date lines: under the title in the same block, or the block after it."""
    first, rest = chunks[0], chunks[1:]
    if len(first.lines) > 1:
        return [(first.line + i, line) for i, line in enumerate(first.lines) if i], rest
    if rest and _looks_like_metadata(rest[0]):
        return [(rest[0].line + i, line) for i, line in enumerate(rest[0].lines)], rest[1:]
    return [], rest


def _looks_like_metadata(chunk: _Chunk) -> bool:
    return len(chunk.lines) <= 2 and all(
        len(line) <= 80 and not line.endswith((".", "!", "?", ":")) for line in chunk.lines
    )


def _read_metadata(meta: list[tuple[int, str]], source_name: str) -> tuple[str | None, date | None]:
    """Author then date; a single line is the date when it has a digit, else the author."""
    if len(meta) > 2:
        raise UserError(
            "expected at most an author line and a date line under the title; "
            "leave a blank line before the first paragraph",
            where(source_name, meta[2][0]),
        )
    author: str | None = None
    date_line: tuple[int, str] | None = None
    if len(meta) == 2:
        author, date_line = _author_name(meta[0][1]), meta[1]
    elif len(meta) == 1:
        if any(ch.isdigit() for ch in meta[0][1]):
            date_line = meta[0]
        else:
            author = _author_name(meta[0][1])
    if date_line is None:
        return author, None
    try:
        return author, parse_date(date_line[1])
    except ValueError as exc:
        raise UserError(str(exc), where(source_name, date_line[0])) from None


def _author_name(line: str) -> str:
    """ "By Noah Warren" -> "Noah Warren": the byline word is page furniture."""
    return re.sub(r"^by\s+", "", line, flags=re.IGNORECASE)


def _without_share_lines(chunks: list[_Chunk]) -> list[_Chunk]:
    """Drop share-widget lines wherever they stand; drop blocks left empty."""
    kept = []
    for chunk in chunks:
        lines = tuple(line for line in chunk.lines if not is_share_widget(line))
        if lines:
            kept.append(_Chunk(chunk.line, lines))
    return kept


def _take_signoff(chunks: list[_Chunk]) -> tuple[SignOff | None, list[_Chunk]]:
    if not chunks:
        return None, chunks
    lines = list(chunks[-1].lines)
    if len(lines) > 1 and lines[0].endswith(",") and len(lines[0].split()) <= 5:
        lines = lines[1:]  # "Warm regards," / "With gratitude,"
    if len(chunks) < 2 or not 1 <= len(lines) <= 2 or not _is_name(lines[0]):
        return None, chunks  # a lone block is the body, never a sign-off
    role = lines[1] if len(lines) == 2 else None
    if role is not None and (len(role) > 80 or role.endswith((".", "!", "?"))):
        return None, chunks
    return SignOff(lines[0], role), chunks[:-1]


def _is_name(line: str) -> bool:
    words = line.split()
    return 1 <= len(words) <= 5 and all(_is_name_word(word.rstrip(",")) for word in words)


def _is_name_word(word: str) -> bool:
    """Capitalised letters and name marks: Noah, O'Brien, Jean-Luc, J., Jr., LCSW.

    A period only ends a short abbreviation, so "Body." or "Thanks." is not a name.
    """
    if word.endswith(".") and len(word) > 3:
        return False
    return bool(word) and word[0].isupper() and all(ch.isalpha() or ch in ".'\u2019-" for ch in word)


def _body_blocks(chunks: list[_Chunk]) -> list[Block]:
    blocks: list[Block] = []
    for index, chunk in enumerate(chunks):
        if _is_alt_text(chunk):
            continue
        has_next = index + 1 < len(chunks)
        if has_next and _is_heading(chunk):
            blocks.append(Block("heading", escape_text(chunk.text)))
        else:
            blocks.append(Block("paragraph", escape_text(strip_footnote_markers(chunk.text))))
    return blocks


def _is_alt_text(chunk: _Chunk) -> bool:
    """A lone lowercase fragment with no punctuation: an image's alt text left by the copy."""
    line = chunk.text
    return (
        len(chunk.lines) == 1
        and line[0].isalpha()
        and line == line.lower()
        and len(line.split()) <= 10
        and not _PUNCTUATION.search(line)
    )


def _is_heading(chunk: _Chunk) -> bool:
    line = chunk.text
    words = line.split()
    if len(chunk.lines) != 1 or len(line) > 100 or len(words) > 14:
        return False
    if not line[0].isupper() or _PUNCTUATION.search(line[-1]):
        return False
    significant = [w for w in words if len(w) >= 4 and w.lower() not in SMALL_WORDS]
    if not significant:
        return True
    capitalised = sum(1 for w in significant if w[0].isupper() or w[0].isdigit())
    return capitalised * 3 >= len(significant) * 2


def strip_footnote_markers(text: str) -> str:
    """Remove flattened footnote references: "depression 4." -> "depression."."""
    text = _BRACKET_FOOTNOTE.sub("", text)
    return _FOOTNOTE.sub(lambda m: m[1] if _is_footnote_host(m[1]) else m[0], text)


def _is_footnote_host(word: str) -> bool:
    """Footnotes follow ordinary lowercase words; "COVID 19." or "Windows 11." are names."""
    return word.islower() and word not in COUNTING_WORDS
