"""A campaign's message after the settings changed: which public URL it was rendered for, and
rendering it again.

A campaign is rendered once, at ``campaign create``, and every tracking, unsubscribe and
web-version link in it starts with the ``NEWSLETTER_PUBLIC_URL`` of that moment. When the
setting changes later (the usual first-deployment story: made on the default
``http://127.0.0.1:8000``, then given the https tracking domain), the stored message still
points at the old address. Preflight then saw "no unsubscribe link" and "no call to action"
and blamed the templates; the truth is one line: re-render it.

The address is read from the message itself (the links before each ``%%placeholder%%`` token),
so campaigns made before this check existed are judged too, and no column has to be kept in
step with the HTML it describes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from newsletter.campaigns.create import brand_from_settings, get_campaign
from newsletter.config import Settings
from newsletter.content import Article
from newsletter.db import models
from newsletter.errors import UserError
from newsletter.render import Link, render_campaign

#: Statuses whose message has not started going out: re-rendering changes what every reader gets.
RERENDERABLE = ("draft", "scheduled", "missed")

#: ``{public_url}/u/%%token%%``, ``/o/%%token%%.gif``, ``/c/%%token%%/3``...: the links only the
#: renderer writes, each carrying a per-recipient placeholder right after the base.
_RENDERED_LINK = re.compile(r"""(https?://[^\s"'<>]+?)/[cuopw]/%%[A-Za-z0-9_]+%%""")

_REFUSALS = {
    "sending": "it is being sent: some readers already have this message, so it cannot change now",
    "paused": "it was paused mid-send: some readers already have this message, so it cannot change now",
    "sent": "it was sent: a sent message cannot change; make a new campaign with `newsletter campaign create`",
    "cancelled": "it is cancelled; make a new campaign with `newsletter campaign create`",
}


def rendered_public_url(campaign: models.Campaign) -> str | None:
    """The public URL the campaign's message was rendered for, or None when it has no such link.

    The most frequent base wins (a message has a dozen of these links, all from one setting).
    """
    found = Counter(_RENDERED_LINK.findall(campaign.html or "") + _RENDERED_LINK.findall(campaign.text or ""))
    return found.most_common(1)[0][0].rstrip("/") if found else None


def stale_public_url(campaign: models.Campaign, settings: Settings) -> str | None:
    """The old public URL when the campaign was rendered for another than today's, else None."""
    rendered = rendered_public_url(campaign)
    return rendered if rendered is not None and rendered != settings.public_base else None


def stale_url_message(campaign_id: int, rendered: str, current: str) -> str:
    """The one line every command says about a campaign rendered for an old public URL."""
    return (
        f"campaign {campaign_id} was rendered for {rendered}; the public URL is now {current}: "
        f"run `newsletter campaign rerender {campaign_id}`"
    )


def refuse_stale(campaign: models.Campaign, settings: Settings) -> None:
    """Raise :class:`UserError` when the campaign's links lead to an old public URL.

    Sent as it is, its unsubscribe, tracking and web-version links would point at an address
    this installation no longer answers: not overridable with ``--force``.
    """
    rendered = stale_public_url(campaign, settings)
    if rendered is not None:
        raise UserError(stale_url_message(campaign.id, rendered, settings.public_base))


@dataclass(frozen=True)
class Rerendered:
    campaign_id: int
    status: str
    rendered_for_before: str | None
    public_url: str
    subject: str
    preheader: str
    segment: str
    scheduled_at: str | None
    html_bytes: int
    links: int

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _check_rerenderable(session: Session, campaign: models.Campaign) -> None:
    where = f"campaign {campaign.id}"
    if campaign.kind == "nurture":
        raise UserError(
            "is a nurture sequence step; its message comes from the sequence's template, not an article", where=where
        )
    if campaign.article is None:
        raise UserError("has no stored article to render from", where=where)
    if campaign.status in RERENDERABLE:
        return
    if campaign.status == "failed" and not session.scalar(
        select(exists().where(models.Delivery.campaign_id == campaign.id))
    ):
        return  # a scheduled send refused before anything was queued: nothing went out
    reason = _REFUSALS.get(campaign.status, f"it is {campaign.status}")
    raise UserError(f"cannot be re-rendered: {reason}", where=where)


def _replace_links(session: Session, campaign: models.Campaign, links: Sequence[Link]) -> None:
    """The new links, position by position: rows are updated in place (their ids stay), extra
    old positions removed. A campaign that has not gone out has no clicks that refer to them."""
    existing = {link.position: link for link in campaign.links}
    for link in links:
        row = existing.pop(link.position, None)
        if row is None:
            session.add(
                models.CampaignLink(
                    campaign_id=campaign.id, position=link.position, url=link.url, label=link.label, kind=link.kind
                )
            )
        else:
            row.url, row.label, row.kind = link.url, link.label, link.kind
    for row in existing.values():
        session.delete(row)


def rerender_campaign(session: Session, settings: Settings, campaign_id: int) -> Rerendered:
    """Render a draft, scheduled or missed campaign again from its stored article with today's
    settings (public URL, sender, footer, templates); subject, preheader, segment, template and
    schedule are kept. A scheduled send that failed before anything was queued comes back as a
    draft. Sending, paused, sent and cancelled campaigns are refused with the reason."""
    campaign = get_campaign(session, campaign_id)
    _check_rerenderable(session, campaign)
    assert campaign.article is not None
    before = rendered_public_url(campaign)
    templates = Path(settings.templates_dir) if settings.templates_dir else None
    rendered = render_campaign(
        Article.from_dict(campaign.article.content),
        brand_from_settings(settings),
        subject=campaign.subject,
        preheader=campaign.preheader,
        template=campaign.template,
        templates_dir=templates,
    )
    campaign.html, campaign.text = rendered.html, rendered.text
    _replace_links(session, campaign, rendered.links)
    if campaign.status == "failed":  # its job has fired: a draft again, to schedule or send anew
        campaign.status, campaign.status_reason, campaign.scheduled_at = "draft", None, None
    session.flush()
    session.refresh(campaign)
    return Rerendered(
        campaign_id=campaign.id,
        status=campaign.status,
        rendered_for_before=before,
        public_url=settings.public_base,
        subject=campaign.subject,
        preheader=campaign.preheader,
        segment=campaign.segment,
        scheduled_at=campaign.scheduled_at.isoformat() if campaign.scheduled_at else None,
        html_bytes=len(campaign.html.encode()),
        links=len(campaign.links),
    )
