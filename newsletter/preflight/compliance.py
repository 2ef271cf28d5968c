"""Compliance: CAN-SPAM's footer (who sends, from where, how to stop) and nothing left unrendered."""

from __future__ import annotations

import re
from email.utils import getaddresses

from newsletter.preflight.htmlscan import scan_html
from newsletter.preflight.model import Check, CheckContext, ParsedMessage, failed_on
from newsletter.render import PLACEHOLDERS

LEFTOVER_MARKERS = ("{{", "{%", "{#")
PLACEHOLDER = re.compile(r"%%[A-Za-z0-9_]+%%")
STYLE_BLOCK = re.compile(r"<style\b.*?</style\s*>", re.IGNORECASE | re.DOTALL)
MERGE_TAG = re.compile(r"\*\|[A-Z0-9_:]+\|\*")  # Mailchimp-style merge tags pasted into an article


def _normalise(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split()).casefold()


def leftovers(content: str) -> list[str]:
    """Unrendered template markup or substitution placeholders found in ``content``."""
    found = [marker for marker in LEFTOVER_MARKERS if marker in content]
    found += sorted(set(PLACEHOLDER.findall(content)))
    found += sorted(set(MERGE_TAG.findall(content)))
    return found


def check(msg: ParsedMessage, ctx: CheckContext) -> Check:
    problems: list[tuple[str, str]] = []
    scan = scan_html(msg.html) if msg.html else None
    html_text = _normalise(scan.visible_text) if scan else ""
    text = _normalise(msg.text)
    parts = [("HTML", html_text)] if msg.has_html_part else []
    if msg.has_text_part:
        parts.append(("text", text))
    details: dict[str, object] = {"parts_checked": [name for name, _ in parts]}

    # Postal address (CAN-SPAM: a valid physical postal address).
    address = _normalise(ctx.postal_address or "")
    if not address:
        problems.append(
            (
                "no postal address is configured, and CAN-SPAM requires one in every message",
                "set NEWSLETTER_POSTAL_ADDRESS",
            )
        )
    else:
        missing = [name for name, content in parts if address not in content]
        if missing:
            problems.append(
                (
                    f"the postal address ({ctx.postal_address}) is missing from the {' and '.join(missing)} "
                    f"part{'s' if len(missing) > 1 else ''}",
                    "keep {{ brand.postal_address }} in templates/partials/footer.mjml.j2 and the text template",
                )
            )

    # A visible unsubscribe link in the HTML and the unsubscribe URL in the text.
    unsubscribe_prefix = f"{ctx.public_base}/u/"
    if scan is not None and msg.has_html_part:
        links = [
            a
            for a in scan.anchors
            if a.href and (a.href.startswith(unsubscribe_prefix) or "unsubscribe" in a.href.lower())
        ]
        visible = [a for a in links if not a.hidden and a.text.strip()]
        details["html_unsubscribe_links"] = [{"href": a.href, "text": a.text, "hidden": a.hidden} for a in links]
        if not visible:
            problems.append(
                (
                    "the HTML part has no visible unsubscribe link"
                    if not links
                    else "the HTML part's unsubscribe link is hidden or has no text",
                    "keep the Unsubscribe link ({{ unsubscribe_url }}) in templates/partials/footer.mjml.j2",
                )
            )
    if msg.has_text_part:
        urls = re.findall(re.escape(unsubscribe_prefix) + r"\S+", msg.text)
        details["text_unsubscribe_urls"] = urls
        if not urls or "unsubscribe" not in text:
            problems.append(
                (
                    "the text part has no unsubscribe link",
                    'keep "Unsubscribe: {{ unsubscribe_url }}" in the text template (templates/*.txt.j2)',
                )
            )

    # The sender identified: a From display name and the sender's name in the body.
    senders = getaddresses([str(msg.message.get("From", "") or "")])
    from_name = senders[0][0].strip() if senders else ""
    brand = _normalise(ctx.brand_name or from_name)
    details["sender"] = ctx.brand_name or from_name
    if not from_name:
        problems.append(("the From header does not name the sender", "set NEWSLETTER_FROM_NAME"))
    if brand:
        unnamed = [name for name, content in parts if brand not in content]
        if unnamed:
            problems.append(
                (
                    f"the sender ({ctx.brand_name or from_name}) is not named in the {' and '.join(unnamed)} part",
                    "keep {{ brand.brand_name }} in the header or footer partial",
                )
            )

    # Nothing unrendered: Jinja markup, %%placeholders%%, merge tags.
    subject = str(msg.message.get("Subject", "") or "")
    # CSS is left out of the HTML: a minified rule like "{#outlook a{...}" is not Jinja.
    html_without_css = STYLE_BLOCK.sub("", msg.html)
    for name, content in (("subject", subject), ("HTML", html_without_css), ("text", msg.text)):
        found = leftovers(content)
        if found:
            problems.append(
                (
                    f"unrendered markup in the {name}: {', '.join(found[:5])}",
                    "fix the template or article text that produced it; the only placeholders are "
                    + ", ".join(PLACEHOLDERS),
                )
            )

    if verdict := failed_on("compliance", problems, details):
        return verdict
    both = " and ".join(name for name, _ in parts) + (" parts" if len(parts) > 1 else " part")
    return Check(
        "compliance",
        "pass",
        f"postal address, a visible unsubscribe link and the sender's name in the {both}; nothing left unrendered",
        "",
        details,
    )
