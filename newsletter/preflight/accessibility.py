"""Accessibility: a language, alt text, layout tables marked as such, readable contrast.

Contrast is WCAG 2 AA, computed from the colours a reader gets (inline styles, ``bgcolor``, the
``<style>`` block's simple rules; links without a colour are browser blue): 4.5:1 for body text,
3:1 for large text (24 px, or 18.66 px bold). Hidden text (the preheader) is not read, so it is
not judged. The ratio itself comes from the render room's palette code (``theme.contrast_ratio``).
"""

from __future__ import annotations

from typing import cast

from newsletter.preflight.htmlscan import Scan, colour_hex, scan_html
from newsletter.preflight.model import Check, CheckContext, ParsedMessage, failed_on
from newsletter.render.theme import contrast_ratio

BODY_MIN = 4.5
LARGE_MIN = 3.0


def _is_large(font_px: float, bold: bool) -> bool:
    return font_px >= 24 or (bold and font_px >= 18.66)


def _short(value: str, length: int = 60) -> str:
    value = " ".join(value.split())
    return value if len(value) <= length else value[: length - 1] + "…"


def contrast_problems(scan: Scan) -> tuple[list[dict[str, object]], list[dict[str, object]], float | None]:
    """(runs below the minimum, runs whose colour could not be read, the lowest ratio seen)."""
    low: list[dict[str, object]] = []
    unreadable: list[dict[str, object]] = []
    lowest: float | None = None
    seen: set[tuple[object, ...]] = set()
    for run in scan.runs:
        if run.hidden or not run.text.strip():
            continue
        if not isinstance(run.colour, tuple):
            unreadable.append({"text": _short(run.text), "colour": run.colour})
            continue
        fg, bg = colour_hex(run.colour), colour_hex(run.background)
        ratio = contrast_ratio(fg, bg)
        lowest = ratio if lowest is None else min(lowest, ratio)
        minimum = LARGE_MIN if _is_large(run.font_px, run.bold) else BODY_MIN
        key = (fg, bg, minimum)
        if ratio < minimum and key not in seen:
            seen.add(key)
            low.append(
                {
                    "text": _short(run.text),
                    "colour": fg,
                    "background": bg,
                    "ratio": round(ratio, 2),
                    "minimum": minimum,
                    "font_px": round(run.font_px, 1),
                    "element": run.path,
                }
            )
    return low, unreadable, lowest


def check(msg: ParsedMessage, ctx: CheckContext) -> Check:
    if not msg.html:
        return Check("accessibility", "fail", "there is no HTML part to check", "build the message with an HTML part")
    scan = scan_html(msg.html)
    problems: list[tuple[str, str]] = []
    details: dict[str, object] = {}

    lang = (scan.html_attrs or {}).get("lang", "").strip()
    details["lang"] = lang or None
    if not lang:
        problems.append(
            (
                "the document has no lang attribute, so screen readers guess the language",
                'set <mjml lang="en"> in the campaign template (templates/*.mjml.j2)',
            )
        )

    no_alt = [attrs.get("src", "?") for attrs, _hidden in scan.images if "alt" not in attrs]
    details["images"] = len(scan.images)
    details["images_without_alt"] = no_alt
    if no_alt:
        problems.append(
            (
                f"{len(no_alt)} image(s) without alt text: {', '.join(_short(s, 80) for s in no_alt[:3])}",
                'give every image an alt text; a decorative one alt="" (in the article or the template)',
            )
        )

    layout = [attrs for attrs, is_data in scan.tables if not is_data]
    unmarked = [attrs for attrs in layout if attrs.get("role", "").strip().lower() not in ("presentation", "none")]
    details["layout_tables"] = len(layout)
    details["layout_tables_without_role"] = len(unmarked)
    if unmarked:
        problems.append(
            (
                f'{len(unmarked)} layout table(s) without role="presentation": screen readers announce '
                "rows and columns that are not there",
                'add role="presentation" to layout tables (MJML does this; check <mj-raw> and article HTML)',
            )
        )

    low, unreadable, lowest = contrast_problems(scan)
    details["lowest_contrast"] = round(lowest, 2) if lowest is not None else None
    details["low_contrast"] = low
    details["unreadable_colours"] = unreadable
    if low:
        worst = min(low, key=lambda item: cast(float, item["ratio"]))
        problems.append(
            (
                f"{len(low)} text colour(s) below WCAG AA contrast; worst {worst['ratio']}:1 "
                f'({worst["colour"]} on {worst["background"]}, "{worst["text"]}", needs {worst["minimum"]}:1)',
                "darken the text or lighten its background (newsletter/render/theme.py holds the palette)",
            )
        )

    if verdict := failed_on("accessibility", problems, details):
        return verdict
    reason = (
        f'lang="{lang}", {len(scan.images)} image(s) with alt text, {len(layout)} layout table(s) '
        f'role="presentation", lowest text contrast {details["lowest_contrast"]}:1'
    )
    if unreadable:
        return Check(
            "accessibility",
            "warn",
            reason + f"; {len(unreadable)} text colour(s) could not be read",
            "use #rrggbb colours so contrast can be checked",
            details,
        )
    return Check("accessibility", "pass", reason, "", details)
