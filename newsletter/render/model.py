"""What the render room is given (Brand) and what it hands back (RenderedCampaign, Link)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_REASON = "You are receiving this because you subscribed to the {brand_name} newsletter."

#: The kinds of click-tracked link a template may register (``track(url, label, kind)``).
#: ``honeypot``: a link hidden from people (templates/partials/honeypot.mjml.j2); a click on it
#: is a machine's (newsletter.tracking.classify).
LINK_KINDS: tuple[str, ...] = ("cta", "article", "read_more", "honeypot")


@dataclass(frozen=True)
class Brand:
    """Who sends the newsletter and where its links point. Built from settings by the caller."""

    brand_name: str
    from_name: str
    from_email: str
    reply_to: str
    postal_address: str
    booking_url: str
    website_url: str
    public_url: str  # the tracking app's base URL (NEWSLETTER_PUBLIC_URL)
    reason: str = DEFAULT_REASON  # why the reader gets this email; "{brand_name}" is filled in
    teaser_words: int = 1200  # longer articles are sent as a teaser plus "Read the full article"

    def __post_init__(self) -> None:
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        object.__setattr__(self, "reason", self.reason.replace("{brand_name}", self.brand_name))


@dataclass(frozen=True)
class Link:
    """A click-tracked link: ``{public_url}/c/{token}/{position}`` redirects to ``url``."""

    position: int
    url: str
    label: str
    kind: str  # cta | article | read_more | honeypot


@dataclass(frozen=True)
class RenderedCampaign:
    """The compiled campaign, per-recipient placeholders (PLACEHOLDERS) still in it."""

    subject: str
    preheader: str
    html: str
    text: str
    links: tuple[Link, ...]
    template: str
