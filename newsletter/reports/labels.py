"""Plain-English labels for the machine keys a report carries (link kinds, machine reasons).

``--json`` and ``--csv`` keep the keys (``cta``, ``honeypot``, ``apple_mpp``): scripts match on
them. Everything a person reads (the terminal tables, the HTML report, the weekly email, chart
labels) says what the key means instead, so the director never meets a word of our trade such
as "honeypot". One table here, used by every renderer, so the outputs cannot drift apart.
"""

from __future__ import annotations

from newsletter.tracking.classify import REASONS

#: What each kind of tracked link is (``newsletter.render.model.LINK_KINDS``, plus the web version).
LINK_KINDS: dict[str, str] = {
    "cta": "“Connect today” button",
    "article": "link in the article",
    "read_more": "“Read more” link",
    "web": "web version of the email",
    "honeypot": "hidden link only machines click",
}

#: Why an open or click was judged a machine's, each reason of ``tracking.REASONS`` in plain words
#: (those describe the rule for engineers); a reason added there later falls back to its text.
PLAIN_REASONS: dict[str, str] = {
    "apple_mpp": "Apple Mail Privacy Protection fetched the images",
    "scanner_user_agent": "named itself a scanner, bot or program",
    "scanner_network": "came from a known mail-scanner network",
    "no_user_agent": "gave no browser name",
    "head_request": "only checked that the link works",
    "honeypot": "clicked a hidden link only machines click",
    "too_fast_after_delivery": "clicked within seconds of sending",
    "burst_clicks": "clicked many links within one second",
    "sg_machine_open": "SendGrid marked the open as a machine's",
    "too_fast_confirm": "continued to booking faster than a person can read",
    "unknown": "reason not recorded",
}


def link_kind(kind: str) -> str:
    """The kind of a link as a person says it (an unknown kind: its key, underscores as spaces)."""
    return LINK_KINDS.get(kind, kind.replace("_", " "))


def machine_reason(reason: str) -> str:
    """Why an open or click was judged a machine's, as a sentence fragment a director reads."""
    return PLAIN_REASONS.get(reason) or REASONS.get(reason) or reason.replace("_", " ")
