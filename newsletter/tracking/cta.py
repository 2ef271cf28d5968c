"""The CTA's confirmation: the person pressed "continue to booking" after a doubted CTA click.

The page is shown by the web room for a :class:`~.clicks.ClickResult` with
``needs_confirmation``; its signed link (:class:`~.tokens.ContinueSigner`) lands here.
"""

from __future__ import annotations

from datetime import datetime

from newsletter.db.models import utcnow
from newsletter.tracking.classify import Classifier, Verdict, default_classifier
from newsletter.tracking.clicks import ClickResult, count_lead, find_target
from newsletter.tracking.events import RequestInfo, UnknownLink, insert_event
from newsletter.tracking.options import DEFAULT_OPTIONS, TrackingOptions
from newsletter.tracking.queries import Db


def confirm_cta(
    session: Db,
    delivery_id: int,
    position: int,
    request: RequestInfo,
    *,
    issued_at: datetime,
    now: datetime | None = None,
    options: TrackingOptions = DEFAULT_OPTIONS,
    classifier: Classifier | None = None,
) -> ClickResult:
    """The person pressed "continue to booking" on the page shown for a doubted CTA click.

    Stores a ``cta_confirm`` event and, when the request is a person, counts the lead. Machine
    checks: the usual request rules (HEAD, no or a scanner's user agent, scanner networks) and
    ``too_fast_confirm`` (sooner than ``cta_confirm_min_seconds`` after the page was served). A
    link older than ``cta_confirm_max_age_days`` still answers with the booking URL but stores
    nothing. Raises :class:`UnknownDelivery`, and :class:`UnknownLink` unless link ``position``
    is the campaign's CTA.
    """
    now = now or utcnow()
    target = find_target(session, delivery_id, position)
    if target.link_id is None or target.url is None or target.kind != "cta":
        raise UnknownLink(f"campaign {target.campaign_id} has no CTA link {position}")
    elapsed = (now - issued_at).total_seconds()
    if elapsed > options.cta_confirm_max_age_days * 86400:
        return ClickResult(url=target.url, link_kind="cta", lead_id=None, is_machine=False, position=position)
    verdict = (classifier or default_classifier()).classify(
        kind="click",
        user_agent=request.user_agent,
        ip=request.ip,
        method=request.method,
        seconds_since_sent=None,
        link_kind="cta",
    )
    if not verdict.is_machine and elapsed < options.cta_confirm_min_seconds:
        verdict = Verdict(True, "too_fast_confirm")
    verdict = Verdict(verdict.is_machine, verdict.reason)  # the person answered: no doubt left
    insert_event(
        session,
        type_="cta_confirm",
        campaign_id=target.campaign_id,
        delivery_id=delivery_id,
        subscriber_id=target.subscriber_id,
        verdict=verdict,
        request=request,
        now=now,
        options=options,
        link_id=target.link_id,
        data={"position": position},
    )
    lead_id = None
    if not verdict.is_machine:
        lead_id = count_lead(session, target, delivery_id, now, options, via="confirm")
    return ClickResult(
        url=target.url,
        link_kind="cta",
        lead_id=lead_id,
        is_machine=verdict.is_machine,
        reason=verdict.reason,
        position=position,
    )
