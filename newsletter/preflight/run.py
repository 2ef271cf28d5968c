"""Running the checks: on any message (``check_message``) or on a campaign's preview (``run_preflight``)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.orm import Session

from newsletter.campaigns import get_campaign, preview, stale_public_url, stale_url_message
from newsletter.campaigns.preview import PREVIEW_DELIVERY_ID
from newsletter.config import Settings
from newsletter.content import Article
from newsletter.db import models
from newsletter.preflight import accessibility, compliance, links, mime_headers, responsive, size, spam, subject
from newsletter.preflight.model import TITLES, Check, CheckContext, ParsedMessage, PreflightReport
from newsletter.tracking.tokens import TokenSigner

CheckFn = Callable[[ParsedMessage, CheckContext], Check]

#: Every check, in report order. The two that run an outside program go to threads.
CHECKS: dict[str, CheckFn] = {
    "spam": spam.check,
    "size": size.check,
    "mime": mime_headers.check,
    "compliance": compliance.check,
    "accessibility": accessibility.check,
    "links": links.check,
    "responsive": responsive.check,
    "subject": subject.check,
}
SLOW = ("spam", "responsive")
assert list(CHECKS) == list(TITLES)


def check_message(
    eml: bytes,
    html: str | None = None,
    text: str | None = None,
    *,
    context: CheckContext,
    only: tuple[str, ...] | None = None,
) -> list[Check]:
    """Run the checks on one message.

    ``eml`` is the whole MIME message; ``html`` and ``text`` are its personalised bodies (read
    from ``eml`` when not given). ``only`` limits the run to some check names.
    """
    names = [name for name in CHECKS if only is None or name in only]
    unknown = set(only or ()) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) {sorted(unknown)}; known: {', '.join(CHECKS)}")
    msg = ParsedMessage.parse(eml, html, text)
    results: dict[str, Check] = {}
    slow = [name for name in names if name in SLOW]
    with ThreadPoolExecutor(max_workers=max(1, len(slow))) as pool:
        futures = {name: pool.submit(CHECKS[name], msg, context) for name in slow}
        for name in names:
            if name not in SLOW:
                results[name] = CHECKS[name](msg, context)
        for name, future in futures.items():
            results[name] = future.result()
    return [results[name] for name in names]


def campaign_context(
    campaign: models.Campaign, settings: Settings, *, screenshots_dir: Path | None = None
) -> CheckContext:
    """What the checks must know about a campaign: its registered links, CTA, footer, sender."""
    from newsletter.render.campaign import DEFAULT_CTA_LABEL

    article = Article.from_dict(campaign.article.content) if campaign.article else None
    cta_label = article.cta.label if article and article.cta else DEFAULT_CTA_LABEL
    return CheckContext(
        public_url=settings.public_base,
        postal_address=settings.postal_address,
        brand_name=settings.brand_name,
        sending_domain=settings.sending_domain,
        links={link.position: link.kind for link in campaign.links},
        cta_label=cta_label,
        preheader=campaign.preheader,
        sample_token=TokenSigner(settings.signing_key()).sign(PREVIEW_DELIVERY_ID),
        screenshots_dir=screenshots_dir,
        campaign_id=campaign.id,
        spamd_host=settings.spamd_host or "",
    )


def stale_url_check(campaign: models.Campaign, settings: Settings) -> Check | None:
    """A failing ``public_url`` check when the campaign was rendered for another public URL.

    Its unsubscribe, tracking and CTA links then start with the old address, so the footer,
    link and rendering checks all fail and point at the templates: the real cause is one
    setting, fixed by rendering the campaign again. The other checks are not run.
    """
    rendered = stale_public_url(campaign, settings)
    if rendered is None:
        return None
    return Check(
        "public_url",
        "fail",
        stale_url_message(campaign.id, rendered, settings.public_base),
        f"newsletter campaign rerender {campaign.id} (a draft or scheduled campaign keeps its subject, "
        "preheader, segment and schedule); --force does not override this",
        {"rendered_for": rendered, "public_url": settings.public_base, "not_run": list(CHECKS)},
    )


def run_preflight(
    session: Session, settings: Settings, campaign_id: int, *, screenshots_dir: Path | None = None
) -> PreflightReport:
    """Every check on the exact message a sample subscriber of the campaign's segment would get."""
    campaign = get_campaign(session, campaign_id)
    sample = preview(session, settings, campaign_id)
    stale = stale_url_check(campaign, settings)
    if stale is not None:  # every other check would fail for this one reason, and blame the templates
        return PreflightReport(checks=(stale,), campaign_id=campaign_id, sample_email=sample.sample_email)
    context = campaign_context(campaign, settings, screenshots_dir=screenshots_dir)
    checks = check_message(sample.eml, sample.html, sample.text, context=context)
    shots = next((tuple(c.details.get("screenshots", ())) for c in checks if c.name == "responsive"), ())
    return PreflightReport(
        checks=tuple(checks), campaign_id=campaign_id, sample_email=sample.sample_email, screenshots=shots
    )
