"""Creating a campaign: render once, keep the compiled message and its registered links.

Rendering happens here, at create time, so a broken template or MJML error surfaces while the
marketer is still at the keyboard, not at 6 a.m. when the scheduler fires.
"""

from __future__ import annotations

import html
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.audiences import load_segment
from newsletter.campaigns.articles import get_article
from newsletter.config import Settings
from newsletter.content import Article
from newsletter.db import models
from newsletter.errors import NotFound, UserError
from newsletter.render import Brand, RenderedCampaign, inert_text, render_campaign

MAX_SUBJECT = 200
GOOD_SUBJECT = 80  # preflight fails a subject this long: inboxes cut it off


def default_subject(article: Article) -> str:
    """The title, or its part before a colon when the whole is too long for an inbox line.

    "The Emergence of Ketamine Assisted Psychotherapy: Transforming Mental Health Treatment" is
    86 characters; its main clause says it all in 48.
    """
    title = " ".join(article.title.split())
    if len(title) < GOOD_SUBJECT:
        return title
    head = title.split(":", 1)[0].strip()
    if ":" in title and 20 <= len(head) < GOOD_SUBJECT:
        return head
    return title[: GOOD_SUBJECT - 1].rsplit(" ", 1)[0].rstrip(",;:-–") + "…"


def brand_from_settings(settings: Settings) -> Brand:
    return Brand(
        brand_name=settings.brand_name,
        from_name=settings.from_name,
        from_email=settings.from_email,
        reply_to=settings.reply_to,
        postal_address=settings.postal_address,
        booking_url=settings.booking_url,
        website_url=settings.website_url,
        public_url=settings.public_base,
        teaser_words=settings.teaser_words,
    )


def default_preheader(article: Article) -> str:
    """The first sentence of the second paragraph: a line that adds to the subject.

    Not the first line of the body: inbox previews already show that, and a preheader that
    repeats it wastes the one extra line a reader sees before opening.
    """
    paragraphs = [
        html.unescape(re.sub(r"<[^>]+>", "", p)) for p in article.paragraphs
    ]  # text, escaped once by the template
    source = paragraphs[1] if len(paragraphs) > 1 else (paragraphs[0] if paragraphs else article.title)
    sentence = re.split(r"(?<=[.!?])\s", source, maxsplit=1)[0]
    return sentence if len(sentence) <= 140 else sentence[:137].rsplit(" ", 1)[0] + "…"


def _check_subject(subject: str) -> str:
    subject = " ".join(subject.split())
    if not subject:
        raise UserError("the subject is empty", where="--subject")
    if len(subject) > MAX_SUBJECT:
        raise UserError(f"the subject is {len(subject)} characters; keep it under {MAX_SUBJECT}", where="--subject")
    return subject


def create_campaign(
    session: Session,
    settings: Settings,
    *,
    article_slug: str,
    segment: str,
    subject: str | None = None,
    preheader: str | None = None,
    template: str = "newsletter.mjml.j2",
    name: str | None = None,
) -> models.Campaign:
    """Render the article for ``segment`` and store the campaign as a draft."""
    article_row = get_article(session, article_slug)
    load_segment(segment, settings.audiences_dir)  # fail now, naming the segment, not at send time
    article = Article.from_dict(article_row.content)
    # Made from the article, they are content: any %%placeholder%% in them stays text (inert_text).
    subject = _check_subject(subject if subject is not None else inert_text(default_subject(article)))
    preheader = " ".join((preheader if preheader is not None else inert_text(default_preheader(article))).split())
    rendered = render_campaign(
        article,
        brand_from_settings(settings),
        subject=subject,
        preheader=preheader,
        template=template,
        templates_dir=_templates_dir(settings),
    )
    return store_draft(
        session, rendered, name=name or article.title, segment=segment, template=template, article_id=article_row.id
    )


def store_draft(
    session: Session,
    rendered: RenderedCampaign,
    *,
    name: str,
    segment: str,
    template: str,
    article_id: int | None,
    kind: str = "newsletter",
) -> models.Campaign:
    """Keep a rendered message as a draft campaign, with its links registered.

    The links are what click tracking and the lead rules look up, so a campaign row is never
    stored without them: newsletters and nurture steps both come through here.
    """
    campaign = models.Campaign(
        kind=kind,
        article_id=article_id,
        name=name,
        subject=rendered.subject,
        preheader=rendered.preheader,
        segment=segment,
        template=template,
        status="draft",
        html=rendered.html,
        text=rendered.text,
    )
    session.add(campaign)
    session.flush()
    session.add_all(
        models.CampaignLink(
            campaign_id=campaign.id, position=link.position, url=link.url, label=link.label, kind=link.kind
        )
        for link in rendered.links
    )
    session.flush()
    return campaign


def _templates_dir(settings: Settings):  # type: ignore[no-untyped-def]
    from pathlib import Path

    return Path(settings.templates_dir) if settings.templates_dir else None


def get_campaign(session: Session, campaign_id: int) -> models.Campaign:
    campaign = session.get(models.Campaign, campaign_id)
    if campaign is None:
        latest = session.scalar(select(models.Campaign.id).order_by(models.Campaign.id.desc()).limit(1))
        hint = f" (the newest is {latest})" if latest else " (there are none yet)"
        raise NotFound(f"no campaign with id {campaign_id}{hint}", where="campaign")
    return campaign
