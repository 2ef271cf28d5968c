"""The depth guard for HTML articles: refuse markup nested too deep before anything parses it.

Why apart from :mod:`.html_format`: it is bounded-work protection, not article extraction. It
runs first, on the raw markup, for every HTML way in (HTML files, rendered Markdown, feed item
content; RSS's XHTML checks the same :data:`MAX_DEPTH`): html5ever, under nh3, is quadratic in
the depth of the open elements (40,000 nested ``<div>`` took 7 s there alone).
"""

from __future__ import annotations

import re
from collections import Counter

from newsletter.errors import UserError

from .assemble import where

__all__ = ["MAX_DEPTH", "check_depth"]

#: The deepest nesting of elements an article may have; real articles stay under 30.
MAX_DEPTH = 1000
#: Elements without content, and elements whose end tag HTML lets the next sibling imply
#: (``<p>``, ``<li>``, table rows and cells ...): neither deepens the tree the sanitiser builds.
_VOID_ELEMENTS = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "keygen",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)
_IMPLIED_END = frozenset(
    {
        "p",
        "li",
        "dt",
        "dd",
        "option",
        "optgroup",
        "tr",
        "td",
        "th",
        "thead",
        "tbody",
        "tfoot",
        "rb",
        "rt",
        "rp",
        "rtc",
        "colgroup",
        "caption",
        "html",
        "head",
        "body",
    }
)


def check_depth(document: str, source_name: str, *, content_line: int | None = 1, fallback_line: int = 1) -> None:
    """Refuse ``document`` when its elements nest deeper than :data:`MAX_DEPTH`, naming the line.

    One regular-expression pass over the raw markup (the stdlib tokenizer is ten times slower,
    and this runs before anything else): each start tag pushes, each end tag pops back to its
    element when that element is open (a Counter answers "is it open?" without scanning), so
    the pass is linear. ``<div/>`` pushes too: HTML ignores the slash on a non-void element
    (though not inside ``<svg>`` or ``<math>``, where ``<path/>`` is closed).
    Void elements and those whose end tag may be implied do not count, so untidy but ordinary
    HTML (unclosed ``<p>`` and ``<li>``) is never refused. Comments and the text of raw-text
    elements (``<script>``, ``<style>`` ...) are skipped whole.
    """
    stack: list[str] = []
    open_count: Counter[str] = Counter()
    for match in _TOKEN.finditer(document):
        name = match["name"]
        if name is None:
            continue  # a comment or a raw-text element
        tag = name.lower()
        if tag in _VOID_ELEMENTS or tag in _IMPLIED_END:
            continue
        if not match["end"]:
            if (open_count["svg"] or open_count["math"]) and match.group(0).endswith("/>"):
                continue  # in SVG and MathML a "/>" does close the element (an inline chart's paths)
            stack.append(tag)
            open_count[tag] += 1
            if len(stack) > MAX_DEPTH:
                _too_deep(document, match.start(), source_name, content_line, fallback_line)
        elif open_count[tag] > 0:
            while True:  # each element is popped once: linear over the whole document
                popped = stack.pop()
                open_count[popped] -= 1
                if popped == tag:
                    break


#: Comments, raw-text elements with their text, and tags. Every alternative consumes up to the
#: end of the document when it is not closed, so no position is scanned twice (no backtracking
#: over a long run of "<a").
_TOKEN = re.compile(
    r"<!--.*?(?:-->|\Z)"
    r"|<(?:script|style|textarea|title|xmp|iframe|noembed|noframes)\b.*?(?:</(?:script|style|textarea|title|xmp"
    r"|iframe|noembed|noframes)\s*>|\Z)"
    r"|<(?P<end>/?)(?P<name>[A-Za-z][^\s/>]*)[^>]*>?",
    re.DOTALL | re.IGNORECASE,
)


def _too_deep(document: str, offset: int, source_name: str, content_line: int | None, fallback_line: int) -> None:
    line = document.count("\n", 0, offset) + 1
    message = f"the HTML nests more than {MAX_DEPTH} elements deep; an article needs a few dozen at most"
    if content_line is None:
        raise UserError(f"{message} (line {line} of its HTML)", where(source_name, fallback_line))
    raise UserError(message, where(source_name, content_line + line - 1))
