"""Preview: the exact message a recipient would get, as HTML, text and a real .eml."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.audiences import load_segment, segment_condition
from newsletter.campaigns.create import get_campaign
from newsletter.campaigns.send import campaign_message
from newsletter.config import Settings
from newsletter.db import models
from newsletter.delivery import Recipient, build_mime, recipient_problem
from newsletter.render import personalise, recipient_values
from newsletter.tracking.tokens import TokenSigner

# Token for delivery id 0: signed like a real one, but no ledger row has id 0, so clicking a
# preview's links shows a 404 instead of counting as a reader's click.
PREVIEW_DELIVERY_ID = 0


@dataclass(frozen=True)
class Preview:
    subject: str
    html: str
    text: str
    eml: bytes
    sample_email: str


def _sample_subscriber(
    session: Session, campaign: models.Campaign, settings: Settings
) -> tuple[str, str | None, str | None]:
    """The segment's first subscriber whose message can be built: one whose name cannot go in
    a header (a line break) fails alone at send time and must not stop the preflight."""
    segment = load_segment(campaign.segment, settings.audiences_dir)
    S = models.Subscriber
    rows = session.execute(
        select(S.email, S.first_name, S.last_name)
        .where(segment_condition(segment), models.sendable())
        .order_by(S.id)
        .limit(50)
    ).all()
    for email, first, last in rows:
        name = " ".join(p for p in (first, last) if p) or None
        if recipient_problem(Recipient(PREVIEW_DELIVERY_ID, email, name, {}, "")) is None:
            return email, first, last
    return ("reader@example.com", "Alex", "Example")


def preview(session: Session, settings: Settings, campaign_id: int) -> Preview:
    campaign = get_campaign(session, campaign_id)
    email, first, last = _sample_subscriber(session, campaign, settings)
    token = TokenSigner(settings.signing_key()).sign(PREVIEW_DELIVERY_ID)
    values = recipient_values(first, token)
    recipient = Recipient(
        delivery_id=PREVIEW_DELIVERY_ID,
        email=email,
        name=" ".join(p for p in (first, last) if p) or None,
        substitutions=values,
        unsubscribe_url=f"{settings.public_base}/u/{token}",
    )
    mime = build_mime(campaign_message(campaign, settings), recipient, personalise=personalise)
    return Preview(
        subject=personalise(campaign.subject, values),
        html=personalise(campaign.html, values),
        text=personalise(campaign.text, values),
        eml=mime.as_bytes(),
        sample_email=email,
    )
