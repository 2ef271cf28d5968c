"""One pass over an email's HTML with the standard library's parser: what a reader would see.

Email HTML is machine-made (MJML) and shallow in its CSS: inline ``style`` attributes, legacy
``bgcolor``, and a ``<style>`` block of simple rules. This scanner computes for every text run
the colour, the background behind it, the font size and whether it is hidden, which is what the
contrast, compliance and preheader checks need, without a browser and without a dependency.
What it does not model (descendant selectors, media queries, background images) it leaves out
rather than guesses: rules it cannot match are ignored, colours it cannot read are reported.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
NOT_CONTENT = {"head", "style", "script", "title", "template", "noscript", "xml"}
BOLD_TAGS = {"b", "strong", "h1", "h2", "h3", "h4", "h5", "h6", "th"}
HEADING_EM = {"h1": 2.0, "h2": 1.5, "h3": 1.17, "h4": 1.0, "h5": 0.83, "h6": 0.67, "small": 0.83}
DEFAULT_LINK_COLOUR = (0, 0, 238)  # #0000ee: browsers do not let links inherit colour

# The CSS named colours an email is likely to use; others are reported as unreadable.
NAMED = {
    "black": "000000", "white": "ffffff", "red": "ff0000", "green": "008000", "blue": "0000ff",
    "yellow": "ffff00", "gray": "808080", "grey": "808080", "silver": "c0c0c0", "maroon": "800000",
    "navy": "000080", "purple": "800080", "teal": "008080", "olive": "808000", "lime": "00ff00",
    "aqua": "00ffff", "cyan": "00ffff", "fuchsia": "ff00ff", "magenta": "ff00ff", "orange": "ffa500",
    "darkgray": "a9a9a9", "darkgrey": "a9a9a9", "lightgray": "d3d3d3", "lightgrey": "d3d3d3",
    "dimgray": "696969", "dimgrey": "696969", "gainsboro": "dcdcdc", "whitesmoke": "f5f5f5",
    "darkgreen": "006400", "darkblue": "00008b", "darkred": "8b0000", "beige": "f5f5dc",
    "ivory": "fffff0", "snow": "fffafa", "linen": "faf0e6", "ghostwhite": "f8f8ff", "seashell": "fff5ee",
    "floralwhite": "fffaf0", "oldlace": "fdf5e6", "antiquewhite": "faebd7", "wheat": "f5deb3",
    "tan": "d2b48c", "brown": "a52a2a", "pink": "ffc0cb", "gold": "ffd700", "lightyellow": "ffffe0",
}

Colour = tuple[int, int, int]


def parse_colour(value: str | None) -> Colour | None | str:
    """``(r, g, b)``; ``None`` for transparent/inherit/unset; the raw string when unreadable."""
    if value is None:
        return None
    value = value.strip().lower().replace("!important", "").strip()
    if value in ("", "transparent", "inherit", "initial", "unset", "none", "currentcolor"):
        return None
    if value.startswith("#"):
        digits = value[1:]
        if len(digits) in (3, 4) and all(c in "0123456789abcdef" for c in digits):
            digits = "".join(c * 2 for c in digits[:3])
        elif len(digits) in (6, 8) and all(c in "0123456789abcdef" for c in digits):
            if len(digits) == 8 and digits[6:] == "00":
                return None
            digits = digits[:6]
        else:
            return value
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    match = re.fullmatch(r"rgba?\(\s*([\d.]+)%?\s*[, ]\s*([\d.]+)%?\s*[, ]\s*([\d.]+)%?\s*(?:[,/]\s*([\d.]+%?)\s*)?\)", value)
    if match:
        alpha = match.group(4)
        if alpha is not None and float(alpha.rstrip("%")) == 0:
            return None
        return tuple(max(0, min(255, round(float(match.group(i))))) for i in (1, 2, 3))  # type: ignore[return-value]
    if value in NAMED:
        hexa = NAMED[value]
        return int(hexa[0:2], 16), int(hexa[2:4], 16), int(hexa[4:6], 16)
    return value


def colour_hex(colour: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def parse_declarations(style: str) -> dict[str, tuple[str, bool]]:
    """``color: red; background: #fff !important`` → {property: (value, important)}."""
    out: dict[str, tuple[str, bool]] = {}
    for declaration in style.split(";"):
        name, sep, value = declaration.partition(":")
        if not sep:
            continue
        value = value.strip()
        important = value.lower().endswith("!important")
        if important:
            value = value[: -len("!important")].strip()
        out[name.strip().lower()] = (value, important)
    return out


def _background_colour(decls: dict[str, tuple[str, bool]]) -> tuple[bool, Colour | None | str]:
    """(set?, colour) from background-color or the colour inside a ``background`` shorthand."""
    if "background-color" in decls:
        return True, parse_colour(decls["background-color"][0])
    if "background" in decls:
        value = decls["background"][0]
        for token in re.findall(r"#[0-9a-fA-F]{3,8}|rgba?\([^)]*\)|[a-zA-Z]+", value):
            colour = parse_colour(token)
            if isinstance(colour, tuple):
                return True, colour
            if token.lower() in ("transparent", "none"):
                return True, None
        return False, None
    return False, None


def _font_px(value: str, parent_px: float) -> float | None:
    match = re.fullmatch(r"\s*([\d.]+)\s*(px|pt|em|rem|%)?\s*", value.lower())
    if not match:
        named = {"xx-small": 9, "x-small": 10, "small": 13, "medium": 16, "large": 18, "x-large": 24, "xx-large": 32}
        return float(named[value.strip().lower()]) if value.strip().lower() in named else None
    number, unit = float(match.group(1)), match.group(2) or "px"
    return {"px": number, "pt": number * 4 / 3, "em": number * parent_px, "rem": number * 16,
            "%": number * parent_px / 100}[unit]


# --- the <style> block: simple selectors only ----------------------------------------------------

@dataclass(frozen=True)
class _Rule:
    tag: str | None
    classes: frozenset[str]
    decls: dict[str, tuple[str, bool]]
    specificity: int


def parse_stylesheet(css: str) -> list[_Rule]:
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    css = _drop_at_blocks(css)
    rules: list[_Rule] = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        decls = parse_declarations(body)
        for selector in selectors.split(","):
            selector = selector.strip()
            match = re.fullmatch(r"(\*|[a-zA-Z][a-zA-Z0-9]*)?((?:\.[\w-]+)*)", selector)
            if not selector or not match:
                continue  # descendant, id, attribute or pseudo selectors: not modelled
            tag = match.group(1)
            classes = frozenset(c for c in match.group(2).split(".") if c)
            tag = None if tag in (None, "*") else tag.lower()
            rules.append(_Rule(tag, classes, decls, len(classes) * 10 + (1 if tag else 0)))
    return rules


def _drop_at_blocks(css: str) -> str:
    """Remove ``@media {...}``, ``@font-face {...}`` and the like (nested braces included)."""
    out: list[str] = []
    i = 0
    while i < len(css):
        at = css.find("@", i)
        if at < 0:
            out.append(css[i:])
            break
        out.append(css[i:at])
        brace = css.find("{", at)
        semi = css.find(";", at)
        if brace < 0 or (0 <= semi < brace):  # @import ...; @charset ...;
            i = (semi + 1) if semi >= 0 else len(css)
            continue
        depth, j = 0, brace
        while j < len(css):
            if css[j] == "{":
                depth += 1
            elif css[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        i = j + 1
    return "".join(out)


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
    parent: "Element | None" = None
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
        self.rules: list[_Rule] = []
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
        is_set, bg = _background_colour(decls)
        if not is_set and "bgcolor" in attrs:
            is_set, bg = True, parse_colour(attrs["bgcolor"])
        if is_set and isinstance(bg, tuple):
            background = bg

        parent_px = parent.font_px if parent else 16.0
        font_px = parent_px * HEADING_EM.get(tag, 1.0)
        if "font-size" in decls:
            size = _font_px(decls["font-size"][0], parent_px)
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
        hidden = bool(parent and parent.hidden) or display == "none" or visibility == "hidden" \
            or "hidden" in attrs or _is_zero(opacity) or (_is_zero(max_height) and overflow == "hidden")
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
            self.scan.runs.append(TextRun(data, element.colour, element.background, element.font_px, element.bold,
                                          tiny, element.tag, path))


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
