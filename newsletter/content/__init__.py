"""The content room: article files in, :class:`Article` out.

Public face::

    load_article(path) -> Article            # format chosen by the file's extension
    parse_article(text, fmt, source_name)    # fmt: text | markdown | html | rss
    slugify(title) -> str
    Article, Section, CallToAction, SignOff

Every user mistake (empty file, no title, a bad date, invalid UTF-8, broken front matter,
malformed XML) is a :class:`newsletter.errors.UserError` whose ``where`` is ``file:line``.
Paragraph, heading and CTA strings are safe inline HTML; ``title``, ``author`` and the
sign-off are plain text (templates escape them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from newsletter.errors import UserError

from .assemble import CTA_PATTERNS, where
from .html_format import parse_html
from .markdown_format import parse_markdown
from .model import Article, CallToAction, Section, SignOff
from .rss_format import parse_rss
from .slug import slugify
from .text_format import parse_text

__all__ = [
    "Article",
    "CallToAction",
    "CTA_PATTERNS",
    "EXTENSIONS",
    "Section",
    "SignOff",
    "load_article",
    "parse_article",
    "slugify",
]

_PARSERS: dict[str, Callable[..., Article]] = {
    "text": parse_text,
    "markdown": parse_markdown,
    "html": parse_html,
    "rss": parse_rss,
}

EXTENSIONS: dict[str, str] = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xml": "rss",
    ".rss": "rss",
    ".atom": "rss",
}


def parse_article(text: str, fmt: str, source_name: str, *, cta_patterns: Iterable[str] = CTA_PATTERNS) -> Article:
    """Parse ``text`` as ``fmt``; ``source_name`` is what error messages call the file."""
    parser = _PARSERS.get(fmt) or _PARSERS.get(EXTENSIONS.get(f".{fmt.lower()}", ""))  # "md", "txt", ...
    if parser is None:
        raise UserError(f"unknown article format {fmt!r} (expected one of: {', '.join(_PARSERS)})", source_name)
    return parser(text.lstrip("\ufeff"), source_name, cta_patterns=tuple(cta_patterns))


def load_article(path: Path, *, cta_patterns: Iterable[str] = CTA_PATTERNS) -> Article:
    """Read and parse an article file; the extension picks the parser."""
    path = Path(path)
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"cannot tell the article format from the extension {path.suffix or '(none)'!r} "
            f"(expected one of: {', '.join(EXTENSIONS)})",
            str(path),
        )
    return parse_article(_read_utf8(path), fmt, str(path), cta_patterns=cta_patterns)


def _read_utf8(path: Path) -> str:
    """Read as UTF-8 (a BOM is allowed); bad bytes are reported with their line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the article: {exc.strerror or exc}", str(path)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8",
            where(str(path), line),
        ) from None
