"""Size: Gmail clips an HTML body over about 102 KB and hides the rest (footer and all)."""

from __future__ import annotations

from newsletter.preflight.model import Check, CheckContext, ParsedMessage

LIMIT_BYTES = 100 * 1024  # under Gmail's ~102 KB, with room for its own additions
WARN_BYTES = 90 * 1024
# A preview's token is for delivery 0 ("0.<signature>"); a real one carries its delivery id in
# base 36. Count 8 more characters per token (ids up to 36**8, 2.8 trillion) so the measure is
# "as sent" for any recipient.
EXTRA_DIGITS_PER_TOKEN = 8


def check(msg: ParsedMessage, ctx: CheckContext) -> Check:
    html_bytes = len(msg.html.encode("utf-8"))
    tokens = msg.html.count(ctx.sample_token) if ctx.sample_token else 0
    as_sent = html_bytes + tokens * EXTRA_DIGITS_PER_TOKEN
    details = {
        "html_bytes": html_bytes,
        "as_sent_bytes": as_sent,
        "tracking_tokens": tokens,
        "limit_bytes": LIMIT_BYTES,
        "kb": round(as_sent / 1024, 1),
    }
    kb = f"{as_sent / 1024:.1f} KB"
    if as_sent >= LIMIT_BYTES:
        return Check(
            "size",
            "fail",
            f"the HTML is {kb} as sent; Gmail clips messages over about 102 KB "
            f"and hides the rest, footer and unsubscribe link included (limit here: 100 KB)",
            'shorten the article (NEWSLETTER_TEASER_WORDS sends a teaser with "Read the full article"), '
            "remove inline images or styles, or trim the template under templates/",
            details,
        )
    if as_sent >= WARN_BYTES:
        return Check(
            "size",
            "warn",
            f"the HTML is {kb} as sent, close to the 100 KB limit (Gmail clips at about 102 KB)",
            "consider a teaser (NEWSLETTER_TEASER_WORDS) or a lighter template",
            details,
        )
    return Check("size", "pass", f"the HTML is {kb} as sent, tracking links included (limit 100 KB)", "", details)
