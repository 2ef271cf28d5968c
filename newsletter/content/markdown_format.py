"""Markdown articles (.md/.markdown) with optional YAML front matter.

Front matter sits between two ``---`` lines at the very top; its keys are ``title``,
``author``, ``date``, ``slug``, ``cta`` and ``cta_label`` (other keys, e.g. a static-site
generator's ``tags``, are ignored). Without a ``title`` the first ``# `` heading is the title.

The body is rendered by markdown-it-py (CommonMark) and then goes through the HTML path
(:mod:`newsletter.content.html_format`), so sanitising, section splitting (``##``/``###``),
list bullets and images follow exactly one set of rules. Raw HTML in the Markdown is allowed
by CommonMark and is sanitised like any other HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from markdown_it import MarkdownIt

from newsletter.errors import UserError
from newsletter.yamlfile import YamlError, load

from .assemble import CTA_PATTERNS, where
from .dates import parse_date
from .html_format import article_from_html
from .model import Article, CallToAction
from .sanitise import sanitise_inline
from .slug import MAX_SLUG_LENGTH, is_valid_slug

_MARKDOWN = MarkdownIt("commonmark")
_FENCE = {"---"}
_CLOSERS = {"---", "..."}
TEXT_KEYS = ("title", "author", "slug", "cta", "cta_label")


@dataclass
class FrontMatter:
    """The parsed front matter, the body after it and where each key was written."""

    values: dict[str, Any] = field(default_factory=dict)
    body: str = ""
    key_lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, 1)


def parse_markdown(text: str, source_name: str, *, cta_patterns: Iterable[str] = CTA_PATTERNS) -> Article:
    """Parse a Markdown article (see the module docstring)."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise UserError("the article is empty", where(source_name, 1))
    front = split_front_matter(text, source_name)
    meta = _checked_values(front, source_name)
    cta = CallToAction(_inline(meta["cta"])) if meta.get("cta") else None
    return article_from_html(
        _MARKDOWN.render(front.body),
        source_name,
        source_format="markdown",
        title=meta.get("title"),
        slug=meta.get("slug"),
        author=meta.get("author"),
        published=meta.get("date"),
        cta=cta,
        cta_label=meta.get("cta_label"),
        cta_patterns=cta_patterns,
        content_line=None,  # the rendered HTML's lines are not the file's
    )


def split_front_matter(text: str, source_name: str) -> FrontMatter:
    """Split off a leading ``---`` YAML block; YAML mistakes name their line in the file."""
    lines = text.split("\n")
    if lines[0].strip() not in _FENCE:
        return FrontMatter(body=text)
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in _CLOSERS), None)
    if end is None:
        raise UserError("front matter opened with '---' is never closed by another '---' line", where(source_name, 1))
    raw = "\n".join(lines[1:end])
    try:  # newsletter.yamlfile: no aliases (a few hundred bytes could expand to gigabytes), dates as text
        values = load(raw, source_name, first_line=2)  # line 1 is the opening '---'
    except YamlError as exc:
        raise UserError(f"front matter is not valid YAML: {exc.problem}", where(source_name, exc.line or 1)) from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError("front matter must be 'key: value' lines (title, author, date, ...)", where(source_name, 2))
    key_lines: dict[str, int] = {}
    for number, line in enumerate(lines[1:end], start=2):
        match = re.match(r"([A-Za-z_][\w-]*)\s*:", line)
        if match:
            key_lines.setdefault(match[1], number)
    return FrontMatter(values, "\n".join(lines[end + 1 :]), key_lines)


def _checked_values(front: FrontMatter, source_name: str) -> dict[str, Any]:
    """Type-check the keys we use; each mistake names the key's line."""
    checked: dict[str, Any] = {}
    for key in TEXT_KEYS:
        value = front.values.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"front matter '{key}' must be non-empty text", where(source_name, front.line_of(key)))
        checked[key] = value.strip()
    if "slug" in checked and not is_valid_slug(checked["slug"]):
        raise UserError(
            f"front matter slug {checked['slug']!r} must be lowercase ASCII letters, digits and single "
            f"hyphens, at most {MAX_SLUG_LENGTH} characters (e.g. 'ketamine-assisted-psychotherapy')",
            where(source_name, front.line_of("slug")),
        )
    if front.values.get("date") is not None:
        checked["date"] = _date_value(front.values["date"], source_name, front.line_of("date"))
    return checked


def _date_value(value: Any, source_name: str, line: int) -> date:
    """A date as the author wrote it (the YAML loader keeps ``2023-08-07`` as text)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return parse_date(str(value))
    except ValueError as exc:
        raise UserError(str(exc), where(source_name, line)) from None


def _inline(markdown_text: str) -> str:
    """Front-matter CTA text may use inline Markdown (a link, emphasis)."""
    return sanitise_inline(_MARKDOWN.renderInline(markdown_text))
