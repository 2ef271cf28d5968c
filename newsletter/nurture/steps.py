"""Each step of a sequence is a campaign row (``kind='nurture'``), found or created once.

Being a campaign is what makes a step safe: its sends go through the same ledger
(``deliveries``, unique per campaign and subscriber), so nobody gets a step twice, whatever
restarts; its links are registered (``campaign_links``) so clicks are tracked and a click on
the booking button (kind ``cta``) makes or warms a lead; and it is rendered once, with the
same footer, one-click unsubscribe and per-recipient placeholders as every campaign.

The campaign is found by a stable name, ``nurture:<sequence>:<step number>``. Creating it takes
a lock first (PostgreSQL: an advisory lock; SQLite: the write lock), so two schedulers
starting at the same moment cannot create the same step twice. Once created a step's campaign
is kept as it is: it is what was sent. Its ``segment`` names no real segment, so
``newsletter campaign send`` refuses it instead of mailing a whole segment.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from newsletter.campaigns import brand_from_settings, store_draft
from newsletter.config import Settings
from newsletter.content import Article
from newsletter.db import models, session_scope
from newsletter.db.dialect import is_postgres
from newsletter.errors import UserError
from newsletter.nurture.sequences import Sequence, Step
from newsletter.render import render_campaign


def step_segment(sequence: Sequence) -> str:
    """Not a segment file name (it has a colon), so the ledger builder can never use it."""
    return f"nurture:{sequence.name}"


def find_step_campaigns(session: Session, sequence: Sequence) -> dict[int, int]:
    """{step index: campaign id} for the steps whose campaign exists (oldest row wins)."""
    names = sequence.campaign_names
    rows = session.execute(
        select(models.Campaign.id, models.Campaign.name)
        .where(models.Campaign.kind == "nurture", models.Campaign.name.in_(names))
        .order_by(models.Campaign.id)
    ).all()
    found: dict[int, int] = {}
    for campaign_id, name in rows:
        found.setdefault(names.index(name), campaign_id)
    return found


def ensure_step_campaigns(engine: Engine, settings: Settings, sequence: Sequence) -> dict[int, int]:
    """{step index: campaign id} for every step, creating (rendering) the missing ones."""
    with session_scope(engine) as session:
        found = find_step_campaigns(session, sequence)
    if len(found) == len(sequence.steps):
        return found
    with session_scope(engine) as session:
        _serialise(session, sequence.name)
        found = find_step_campaigns(session, sequence)
        article, article_id = _article(session, sequence)
        for step in sequence.steps:
            if step.index not in found:
                found[step.index] = _create(session, settings, sequence, step, article, article_id)
    return found


def _serialise(session: Session, key: str) -> None:
    """Hold a lock for the rest of this transaction, so find-then-create is one step."""
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"nurture-steps:{key}"})
    else:  # a write statement takes SQLite's one write lock, even when it changes nothing
        session.execute(text("UPDATE campaigns SET id = id WHERE 1 = 0"))


def _article(session: Session, sequence: Sequence) -> tuple[Article, int | None]:
    """The article the entry names, when it is in the store; else a stand-in that only carries
    the sequence's name (templates test ``article.sections`` before linking to it)."""
    if sequence.entry.article:
        row = session.scalar(select(models.Article).where(models.Article.slug == sequence.entry.article))
        if row is not None:
            return Article.from_dict(row.content), row.id
    title = sequence.description or sequence.name
    return Article(title=title, slug=sequence.name, sections=()), None


def render_step(settings: Settings, sequence: Sequence, step: Step, article: Article):  # type: ignore[no-untyped-def]
    """The step's template compiled once (a :class:`newsletter.render.RenderedCampaign`)."""
    templates_dir = Path(settings.templates_dir) if settings.templates_dir else None
    try:
        brand = brand_from_settings(settings)
        if sequence.reason:
            brand = replace(brand, reason=sequence.reason)
        return render_campaign(
            article,
            brand,
            subject=step.subject,
            preheader=step.preheader,
            template=step.template,
            templates_dir=templates_dir,
        )
    except UserError as error:
        raise UserError(
            f"{sequence.name} step {step.number} ({step.name}): {error.message}", where=error.where
        ) from None


def _create(
    session: Session, settings: Settings, sequence: Sequence, step: Step, article: Article, article_id: int | None
) -> int:
    rendered = render_step(settings, sequence, step, article)
    campaign = store_draft(
        session,
        rendered,
        kind="nurture",
        name=sequence.campaign_name(step.index),
        segment=step_segment(sequence),
        template=step.template,
        article_id=article_id,
    )
    return campaign.id
