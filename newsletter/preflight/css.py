"""The CSS an email's HTML carries, read as far as the preflight scanner needs: colours,
declarations, font sizes and a ``<style>`` block of simple rules (tag and class selectors).

Why apart from :mod:`.htmlscan`: this is value parsing with no notion of a document (each
function takes a string and returns a value, testable alone); the scanner walks the HTML and
applies these values element by element. What is not modelled (descendant selectors, media
queries, background images) is left out rather than guessed: rules it cannot match are
ignored, colours it cannot read come back as the raw string for the checks to report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Colour",
    "Rule",
    "background_colour",
    "colour_hex",
    "font_size_px",
    "parse_colour",
    "parse_declarations",
    "parse_stylesheet",
]

# The CSS named colours an email is likely to use; others are reported as unreadable.
NAMED = {
    "black": "000000",
    "white": "ffffff",
    "red": "ff0000",
    "green": "008000",
    "blue": "0000ff",
    "yellow": "ffff00",
    "gray": "808080",
    "grey": "808080",
    "silver": "c0c0c0",
    "maroon": "800000",
    "navy": "000080",
    "purple": "800080",
    "teal": "008080",
    "olive": "808000",
    "lime": "00ff00",
    "aqua": "00ffff",
    "cyan": "00ffff",
    "fuchsia": "ff00ff",
    "magenta": "ff00ff",
    "orange": "ffa500",
    "darkgray": "a9a9a9",
    "darkgrey": "a9a9a9",
    "lightgray": "d3d3d3",
    "lightgrey": "d3d3d3",
    "dimgray": "696969",
    "dimgrey": "696969",
    "gainsboro": "dcdcdc",
    "whitesmoke": "f5f5f5",
    "darkgreen": "006400",
    "darkblue": "00008b",
    "darkred": "8b0000",
    "beige": "f5f5dc",
    "ivory": "fffff0",
    "snow": "fffafa",
    "linen": "faf0e6",
    "ghostwhite": "f8f8ff",
    "seashell": "fff5ee",
    "floralwhite": "fffaf0",
    "oldlace": "fdf5e6",
    "antiquewhite": "faebd7",
    "wheat": "f5deb3",
    "tan": "d2b48c",
    "brown": "a52a2a",
    "pink": "ffc0cb",
    "gold": "ffd700",
    "lightyellow": "ffffe0",
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
    match = re.fullmatch(
        r"rgba?\(\s*([\d.]+)%?\s*[, ]\s*([\d.]+)%?\s*[, ]\s*([\d.]+)%?\s*(?:[,/]\s*([\d.]+%?)\s*)?\)", value
    )
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


def background_colour(decls: dict[str, tuple[str, bool]]) -> tuple[bool, Colour | None | str]:
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


def font_size_px(value: str, parent_px: float) -> float | None:
    match = re.fullmatch(r"\s*([\d.]+)\s*(px|pt|em|rem|%)?\s*", value.lower())
    if not match:
        named = {"xx-small": 9, "x-small": 10, "small": 13, "medium": 16, "large": 18, "x-large": 24, "xx-large": 32}
        return float(named[value.strip().lower()]) if value.strip().lower() in named else None
    number, unit = float(match.group(1)), match.group(2) or "px"
    return {
        "px": number,
        "pt": number * 4 / 3,
        "em": number * parent_px,
        "rem": number * 16,
        "%": number * parent_px / 100,
    }[unit]


# --- the <style> block: simple selectors only ----------------------------------------------------


@dataclass(frozen=True)
class Rule:
    tag: str | None
    classes: frozenset[str]
    decls: dict[str, tuple[str, bool]]
    specificity: int


def parse_stylesheet(css: str) -> list[Rule]:
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    css = _drop_at_blocks(css)
    rules: list[Rule] = []
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
            rules.append(Rule(tag, classes, decls, len(classes) * 10 + (1 if tag else 0)))
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
