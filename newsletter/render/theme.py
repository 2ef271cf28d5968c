"""The newsletter's palette and type, in one place so contrast can be checked by a test.

Calm and quiet for a mental-health clinic: warm sand page, white card, deep green-teal accents.
Every text colour is chosen against the background it sits on (WCAG AA: 4.5:1 for body text).
"""

from __future__ import annotations

THEME: dict[str, str] = {
    "page": "#f4f1ec",  # page background (sand)
    "card": "#ffffff",  # article card
    "tint": "#e8f1ee",  # call-to-action panel (pale sage)
    "rule": "#d9e3df",  # dividers
    "text": "#2d3836",  # body text
    "heading": "#1c4a43",  # title, section headings, wordmark
    "muted": "#55605e",  # byline, sign-off role (on card)
    "link": "#17675b",  # links in the body
    "button": "#1c5c52",  # CTA button background
    "button_text": "#ffffff",
    "footer_text": "#575149",  # footer (on page)
    "font_body": "'Helvetica Neue', Helvetica, Arial, sans-serif",
    "font_heading": "Georgia, 'Times New Roman', Times, serif",
}

#: (foreground, background) pairs that carry text, for the contrast test.
TEXT_PAIRS: tuple[tuple[str, str], ...] = (
    ("text", "card"),
    ("heading", "card"),
    ("muted", "card"),
    ("link", "card"),
    ("text", "tint"),
    ("heading", "tint"),
    ("link", "tint"),
    ("button_text", "button"),
    ("footer_text", "page"),
    ("heading", "page"),
    ("link", "page"),
)


def _luminance(hex_colour: str) -> float:
    value = hex_colour.lstrip("#")
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(foreground: str, background: str) -> float:
    """The WCAG 2 contrast ratio of two ``#rrggbb`` colours (1.0 to 21.0)."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
