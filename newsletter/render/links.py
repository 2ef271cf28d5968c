"""Click tracking: one registry per render, shared by the HTML and the text part.

Every link the reader may click in the article body, the call to action and "read more" is
registered here and replaced by ``{public_url}/c/%%token%%/{position}``. The tracking app
redirects only to registered links, so this registry is also the campaign's allow-list.
Footer links (unsubscribe, preferences, web version) are deliberately not registered: they
carry the token themselves and must work even if click tracking is down.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser

from markupsafe import Markup

from newsletter.render.errors import RenderError
from newsletter.render.model import LINK_KINDS, Link
from newsletter.render.personalise import TOKEN, LiveText, inert_html, inert_text

MAX_LABEL = 300  # campaign_links.label
TRACKED_SCHEMES = ("http://", "https://")


class LinkRegistry:
    """Positions start at 1; the same (url, kind) registered twice keeps its first position."""

    def __init__(self, public_url: str) -> None:
        self._base = public_url.rstrip("/")
        self._links: dict[tuple[str, str], Link] = {}

    def track(self, url: str, label: str, kind: str) -> str:
        """Register ``url`` and return the tracked URL that replaces it."""
        if kind not in LINK_KINDS:
            raise RenderError(f"unknown link kind {kind!r}; expected one of {', '.join(LINK_KINDS)}")
        url = (url or "").strip()
        if not url.startswith(TRACKED_SCHEMES):
            raise RenderError(f"only http(s) links can be tracked, got {url!r}")
        key = (url, kind)
        link = self._links.get(key)
        if link is None:
            label = " ".join((label or "").split())[:MAX_LABEL]
            link = Link(position=len(self._links) + 1, url=url, label=label, kind=kind)
            self._links[key] = link
        return self.tracked_url(link.position)

    def tracked_url(self, position: int) -> str:
        return f"{self._base}/c/{TOKEN}/{position}"

    @property
    def links(self) -> tuple[Link, ...]:
        return tuple(sorted(self._links.values(), key=lambda link: link.position))


# --- inline HTML (the Article's paragraph and heading strings) -------------------------------

_VOID = {"br", "img", "hr", "wbr"}


class _Fragment(HTMLParser):
    """Tokenises a safe inline-HTML fragment into (kind, tag_or_text, attrs) events."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[str, str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("start", tag, attrs))
        if tag in _VOID:
            self.events.append(("end", tag, []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("start", tag, attrs))
        self.events.append(("end", tag, []))

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID:
            self.events.append(("end", tag, []))

    def handle_data(self, data: str) -> None:
        self.events.append(("text", data, []))


def _events(fragment: str) -> list[tuple[str, str, list[tuple[str, str | None]]]]:
    parser = _Fragment()
    parser.feed(str(fragment))
    parser.close()
    return parser.events


def _anchors(events: list[tuple[str, str, list[tuple[str, str | None]]]]) -> dict[int, tuple[str, str, int]]:
    """Map the index of each ``<a>`` start event to (href, visible label, index of its end)."""
    found: dict[int, tuple[str, str, int]] = {}
    stack: list[tuple[int, str]] = []
    for i, (kind, value, attrs) in enumerate(events):
        if kind == "start" and value == "a":
            stack.append((i, dict(attrs).get("href") or ""))
        elif kind == "end" and value == "a" and stack:
            start, href = stack.pop()
            label = "".join(v for k, v, _ in events[start + 1 : i] if k == "text")
            found[start] = (href.strip(), " ".join(label.split()), i)
    return found


def _trackable(href: str) -> bool:
    return href.strip().lower().startswith(TRACKED_SCHEMES)


def tracked_html(fragment: str, registry: LinkRegistry, kind: str, link_style: str = "") -> Markup:
    """The fragment as HTML with each http(s) link replaced by its tracked URL.

    Anchors are rebuilt with only ``href`` and an inline ``style`` (MJML does not inline CSS,
    and some clients drop ``<style>``), so the link colour holds everywhere. The fragment is
    content: its text and attributes are written with :func:`inert_html`, so a ``%%token%%``
    in it stays text; only the tracked URLs the registry returns carry a live placeholder.
    """
    events = _events(fragment)
    anchors = _anchors(events)
    out: list[str] = []
    for i, (ev, value, attrs) in enumerate(events):
        if ev == "text":
            out.append(inert_html(value, quote=False))
        elif ev == "end":
            if value not in _VOID:
                out.append(f"</{value}>")
        elif value == "a":
            href, label, _end = anchors.get(i, ("", "", i))
            if _trackable(href):
                href = html.escape(registry.track(href, label or href, kind))  # ours: the token is live
            else:
                href = inert_html(href)  # a mailto: from content keeps no placeholder
            style = f' style="{html.escape(link_style)}"' if link_style else ""
            out.append(f'<a href="{href}"{style} target="_blank">' if href else "<a>")
        else:
            rendered = "".join(f' {k}="{inert_html(v)}"' if v is not None else f" {k}" for k, v in attrs)
            out.append(f"<{value}{rendered}>")
    return Markup("".join(out))


def fragment_text(fragment: str, registry: LinkRegistry, kind: str) -> LiveText:
    """The fragment as plain text: tags dropped, ``<br>`` kept as a line break, links as
    ``label (tracked url)`` (a bare URL becomes just the tracked URL). Whitespace is collapsed
    as a browser would. The content's text is made inert (:func:`inert_text`); the tracked
    URLs keep their live token, so the result is :class:`LiveText`."""
    events = _events(fragment)
    anchors = _anchors(events)
    out: list[str] = []
    skip_to = -1
    for i, (ev, value, _attrs) in enumerate(events):
        if i <= skip_to:
            continue
        if ev == "text":
            out.append(inert_text(value))
        elif ev == "start" and value == "br":
            out.append("\n")
        elif ev == "start" and value == "a" and i in anchors:
            href, label, end = anchors[i]
            skip_to = end
            if _trackable(href):
                target = shown_target = registry.track(href, label or href, kind)  # ours: live token
            else:
                target = href.removeprefix("mailto:").removeprefix("tel:")
                shown_target = inert_text(target)
            shown = inert_text(label)
            if not target or label == target:
                out.append(shown)
            elif not label or label == href:
                out.append(shown_target)
            else:
                out.append(f"{shown} ({shown_target})")
    lines = [" ".join(line.split()) for line in "".join(out).split("\n")]
    return LiveText("\n".join(lines).strip())
