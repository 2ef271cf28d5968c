"""Links: absolute https (or mailto), click-tracked through a registered position, CTA present.

A tracked link is ``{public_url}/c/{token}/{n}`` where ``n`` is one of the campaign's
``campaign_links`` positions: the tracking app redirects only to those, so an unregistered
number is a dead link for the reader. The footer's unsubscribe, preferences and web-version
links (``/u/``, ``/p/``, ``/w/``) are deliberately untracked and allowed as they are.
"""

from __future__ import annotations

import re

from newsletter.preflight.htmlscan import scan_html
from newsletter.preflight.model import Check, CheckContext, ParsedMessage, failed_on

TEXT_URL = re.compile(r"(?:https?://|mailto:)[^\s<>()\"']+", re.IGNORECASE)
FOOTER_PATHS = ("u", "p", "w")


def _classify(url: str, ctx: CheckContext) -> tuple[str, int | None]:
    """The link's kind and, for a tracked link, its position.

    ``tracked`` (n), ``footer``, ``mailto``, ``untracked``, ``relative``; the https test is
    separate (:func:`_is_https`) so a tracked link on an http domain still counts for the CTA.
    """
    url = url.strip()
    lower = url.lower()
    if lower.startswith("mailto:"):
        return "mailto", None
    if not re.match(r"[a-z][a-z0-9+.-]*:", lower):
        return "relative", None
    base = re.escape(ctx.public_base)
    tracked = re.fullmatch(base + r"/c/[^/?#\s]+/(\d+)", url)
    if tracked:
        return "tracked", int(tracked.group(1))
    if re.fullmatch(base + r"/(?:" + "|".join(FOOTER_PATHS) + r")/[^/?#\s]+", url):
        return "footer", None
    return "untracked", None


def _is_https(url: str) -> bool:
    return url.strip().lower().startswith("https://")


def check(msg: ParsedMessage, ctx: CheckContext) -> Check:
    problems: list[tuple[str, str]] = []
    scan = scan_html(msg.html) if msg.html else None
    html_links = [(a.href or "", a.text) for a in (scan.anchors if scan else []) if a.href is not None]
    text_links = [(url.rstrip(".,;:!?"), "") for url in TEXT_URL.findall(msg.text)]
    details: dict[str, object] = {"html_links": len(html_links), "text_links": len(text_links)}

    bad: dict[str, list[str]] = {}
    tracked_positions: dict[str, set[int]] = {"HTML": set(), "text": set()}
    for part, links in (("HTML", html_links), ("text", text_links)):
        for url, label in links:
            kind, position = _classify(url, ctx)
            shown = f"{url} ({label})" if label else url
            if kind not in ("mailto", "relative") and not _is_https(url):
                bad.setdefault("not https", []).append(shown)
            if kind == "tracked":
                assert position is not None
                tracked_positions[part].add(position)
                if ctx.links is not None and position not in ctx.links:
                    bad.setdefault("tracked to an unregistered position (a 404 for the reader)", []).append(shown)
            elif kind == "relative":
                bad.setdefault("not absolute", []).append(shown or "(empty href)")
            elif kind == "untracked":
                bad.setdefault("not click-tracked", []).append(shown)
    for what, urls in bad.items():
        hint = {
            "not absolute": "use absolute https URLs in the article and the template",
            "not https": "use https URLs; for tracking links set NEWSLETTER_PUBLIC_URL to your https tracking domain",
            "not click-tracked": "send links through track() / |linked in the template (newsletter/render/links.py) "
            "so they are registered; only the footer's /u/ /p/ /w/ links go untracked",
            "tracked to an unregistered position (a 404 for the reader)": "re-create the campaign so its links are registered again (campaign create)",
        }[what]
        problems.append((f"{len(urls)} link(s) {what}: {', '.join(urls[:3])}", hint))
    details["links_with_problems"] = bad
    details["tracked_positions"] = {part: sorted(p) for part, p in tracked_positions.items()}

    # The call to action: a tracked link to a registered CTA position, else a link with its label.
    cta_positions = ctx.cta_positions
    for part, links in (("HTML", html_links), ("text", text_links)):
        if part == "text" and not msg.has_text_part:
            continue
        if cta_positions:
            present = bool(tracked_positions[part] & cta_positions)
        elif ctx.cta_label:
            label = ctx.cta_label.casefold()
            present = (
                any(label in text.casefold() for _url, text in links)
                if part == "HTML"
                else label in msg.text.casefold()
            )
        else:
            present = True  # nothing to look for: not a campaign
        if not present:
            problems.append(
                (
                    f"the call to action ({ctx.cta_label or 'cta'}) is missing from the {part} part",
                    "keep the CTA partial (templates/partials/cta.mjml.j2) and its line in the text template",
                )
            )
    details["cta_positions"] = sorted(cta_positions)

    if verdict := failed_on("links", problems, details):
        return verdict
    counted = len(tracked_positions["HTML"] | tracked_positions["text"])
    return Check(
        "links",
        "pass",
        f"{len(html_links)} HTML and {len(text_links)} text link(s), all absolute https or "
        f"mailto; {counted} registered tracked link(s), footer links untracked; the CTA is present",
        "",
        details,
    )
