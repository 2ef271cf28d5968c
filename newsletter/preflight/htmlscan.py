"""One pass over an email's HTML with the standard library's parser: what a reader would see.

Email HTML is machine-made (MJML) and shallow in its CSS: inline ``style`` attributes, legacy
``bgcolor``, and a ``<style>`` block of simple rules. This scanner computes for every text run
the colour, the background behind it, the font size and whether it is hidden, which is what the
contrast, compliance and preheader checks need, without a browser and without a dependency.
What it does not model (descendant selectors, media queries, background images) it leaves out
rather than guesses: rules it cannot match are ignored, colours it cannot read are reported.
The CSS values themselves (colours, declarations, sizes, the ``<style>`` rules) are read by
:mod:`.css`; this module walks the document and applies them element by element.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from newsletter.preflight.css import (
    Colour,
    Rule,
    background_colour,
    colour_hex,
    font_size_px,
    parse_colour,
    parse_declarations,
    parse_stylesheet,
)

__all__ = ["Anchor", "Element", "Scan", "TextRun", "clean_spacers", "colour_hex", "scan_html", "unescape"]

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
NOT_CONTENT = {"head", "style", "script", "title", "template", "noscript", "xml"}
BOLD_TAGS = {"b", "strong", "h1", "h2", "h3", "h4", "h5", "h6", "th"}
HEADING_EM = {"h1": 2.0, "h2": 1.5, "h3": 1.17, "h4": 1.0, "h5": 0.83, "h6": 0.67, "small": 0.83}
DEFAULT_LINK_COLOUR = (0, 0, 238)  # #0000ee: browsers do not let links inherit colour


# --- the scan ------------------------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    colour: Colour | str
    colour_source: str  # "set" or "inherited" or "default"
    background: Colour
    font_px: float
    bold: bool
    hidden: bool
    index: int
    parent: Element | None = None
    text: list[str] = field(default_factory=list)  # visible text inside, for anchors


@dataclass(frozen=True)
class TextRun:
    text: str
    colour: Colour | str
    background: Colour
    font_px: float
    bold: bool
    hidden: bool
    tag: str
    path: str  # e.g. "td > div > p"


@dataclass
class Anchor:
    href: str | None
    text: str
    hidden: bool
    index: int


@dataclass
class Scan:
    html_attrs: dict[str, str] | None = None
    images: list[tuple[dict[str, str], bool]] = field(default_factory=list)  # (attrs, hidden)
    tables: list[tuple[dict[str, str], bool]] = field(default_factory=list)  # (attrs, is a data table)
    anchors: list[Anchor] = field(default_factory=list)
    runs: list[TextRun] = field(default_factory=list)
    hidden_texts: list[str] = field(default_factory=list)  # hidden text blocks in order (the preheader first)
    first_visible_before_hidden: bool = False

    @property
    def visible_text(self) -> str:
        return " ".join(" ".join(r.text for r in self.runs if not r.hidden).split())

    @property
    def preheader(self) -> str | None:
        """The hidden text placed before anything visible in the body: the inbox preview line."""
        if self.first_visible_before_hidden or not self.hidden_texts:
            return None
        return clean_spacers(self.hidden_texts[0]) or None


SPACERS = "\u034f\u200c\u200b\u200d\u2060\ufeff\u00a0\u00ad"


def clean_spacers(text: str) -> str:
    return " ".join(text.translate({ord(c): " " for c in SPACERS}).split())


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scan = Scan()
        self.rules: list[Rule] = []
        self.stack: list[Element] = []
        self.skip_depth = 0  # inside <head>/<style>/<script>...
        self.style_text: list[str] = []
        self.in_style = False
        self.count = 0
        self.table_stack: list[int] = []
        self.hidden_block: list[str] | None = None
        self.hidden_owner: Element | None = None
        self.pending: list[tuple[str, list[tuple[str, str | None]]]] = []

    # styles from the <style> block apply to elements seen after it; MJML puts it in <head>.

    def _computed(self, tag: str, attrs: dict[str, str]) -> Element:
        parent = self.stack[-1] if self.stack else None
        classes = set(attrs.get("class", "").split())
        decls: dict[str, tuple[str, bool]] = {}
        for rule in sorted(self.rules, key=lambda r: r.specificity):
            if (rule.tag is None or rule.tag == tag) and rule.classes <= classes:
                decls.update(rule.decls)
        for name, (value, important) in parse_declarations(attrs.get("style", "")).items():
            if name in decls and decls[name][1] and not important:
                continue  # a stylesheet !important beats an inline declaration
            decls[name] = (value, important)

        parent_colour = parent.colour if parent else (0, 0, 0)
        colour: Colour | str = parent_colour
        source = "inherited" if parent else "default"
        if tag == "a" and attrs.get("href") is not None:
            colour, source = DEFAULT_LINK_COLOUR, "default"
        if tag == "font" and "color" in attrs:
            parsed = parse_colour(attrs["color"])
            if parsed is not None:
                colour, source = parsed, "set"
        if "color" in decls:
            parsed = parse_colour(decls["color"][0])
            if parsed is not None:
                colour, source = parsed, "set"

        background = parent.background if parent else (255, 255, 255)
        is_set, bg = background_colour(decls)
        if not is_set and "bgcolor" in attrs:
            is_set, bg = True, parse_colour(attrs["bgcolor"])
        if is_set and isinstance(bg, tuple):
            background = bg

        parent_px = parent.font_px if parent else 16.0
        font_px = parent_px * HEADING_EM.get(tag, 1.0)
        if "font-size" in decls:
            size = font_size_px(decls["font-size"][0], parent_px)
            if size is not None:
                font_px = size
        bold = (parent.bold if parent else False) or tag in BOLD_TAGS
        if "font-weight" in decls:
            weight = decls["font-weight"][0].strip().lower()
            bold = weight in ("bold", "bolder") or (weight.isdigit() and int(weight) >= 600)

        display = decls.get("display", ("", False))[0].strip().lower()
        visibility = decls.get("visibility", ("", False))[0].strip().lower()
        opacity = decls.get("opacity", ("1", False))[0].strip()
        max_height = decls.get("max-height", ("", False))[0].strip().lower()
        overflow = decls.get("overflow", ("", False))[0].strip().lower()
        hidden = (
            bool(parent and parent.hidden)
            or display == "none"
            or visibility == "hidden"
            or "hidden" in attrs
            or _is_zero(opacity)
            or (_is_zero(max_height) and overflow == "hidden")
        )
        self.count += 1
        return Element(tag, attrs, colour, source, background, font_px, bold, hidden, self.count, parent)

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k.lower(): (v if v is not None else "") for k, v in attrs_list}
        if tag == "style":
            self.in_style = True
            self.style_text = []
        if tag in NOT_CONTENT:
            if tag not in VOID:
                self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if tag == "html":
            self.scan.html_attrs = attrs
        element = self._computed(tag, attrs)
        if tag == "img":
            self.scan.images.append((attrs, element.hidden))
        elif tag == "table":
            self.scan.tables.append((attrs, False))
            self.table_stack.append(len(self.scan.tables) - 1)
        elif tag in ("th", "caption") and self.table_stack:
            index = self.table_stack[-1]
            self.scan.tables[index] = (self.scan.tables[index][0], True)
        elif tag == "a":
            self.scan.anchors.append(Anchor(attrs.get("href"), "", element.hidden, element.index))
        if element.hidden and self.hidden_block is None and not (element.parent and element.parent.hidden):
            self.hidden_block, self.hidden_owner = [], element
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs_list)
        if tag not in VOID and tag not in NOT_CONTENT:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style" and self.in_style:
            self.in_style = False
            self.rules.extend(parse_stylesheet("".join(self.style_text)))
        if tag in NOT_CONTENT:
            if tag not in VOID and self.skip_depth:
                self.skip_depth -= 1
            return
        if self.skip_depth or tag in VOID:
            return
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].tag == tag:
                for closed in self.stack[i:]:
                    self._close(closed)
                del self.stack[i:]
                break
        if tag == "table" and self.table_stack:
            self.table_stack.pop()

    def _close(self, element: Element) -> None:
        if element is self.hidden_owner and self.hidden_block is not None:
            self.scan.hidden_texts.append("".join(self.hidden_block))
            self.hidden_block, self.hidden_owner = None, None
        if element.tag == "a":
            for anchor in reversed(self.scan.anchors):
                if anchor.index == element.index:
                    anchor.text = " ".join("".join(element.text).split())
                    break

    def handle_data(self, data: str) -> None:
        if self.in_style:
            self.style_text.append(data)
            return
        if self.skip_depth or not self.stack:
            return
        for open_element in self.stack:
            if open_element.tag == "a":
                open_element.text.append(data)
        element = self.stack[-1]
        if element.hidden:
            if self.hidden_block is not None:
                self.hidden_block.append(data)
            return
        tiny = element.font_px <= 1.0
        if data.strip():
            if not self.scan.hidden_texts and self.hidden_block is None and not tiny:
                self.scan.first_visible_before_hidden = True
            path = " > ".join(e.tag for e in self.stack[-4:])
            self.scan.runs.append(
                TextRun(
                    data, element.colour, element.background, element.font_px, element.bold, tiny, element.tag, path
                )
            )


def _is_zero(value: str) -> bool:
    match = re.fullmatch(r"\s*0*\.?0*\s*(px|em|rem|%|pt)?\s*", value or "x")
    return bool(match) and value.strip() not in ("",)


def scan_html(html: str) -> Scan:
    scanner = _Scanner()
    scanner.feed(html)
    scanner.close()
    while scanner.stack:
        scanner._close(scanner.stack.pop())
    return scanner.scan


def unescape(text: str) -> str:
    return html_lib.unescape(text)
