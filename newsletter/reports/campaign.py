"""One campaign's numbers, computed from the ledger and the raw events.

Human first: ``unique`` counts are people whose events were judged human; machine opens and
scanner clicks are counted beside them (``unique_machine``) and in ``total``, never mixed in.

Provider figures (``delivered``, ``deferred``, ``bounced``, ``dropped``, ``complaints``) are
counts of SendGrid Event Webhook events, each ``sg_event_id`` once; ``deferred`` counts attempts
(SendGrid retries a deferred message), ``provider.deferred_messages`` the messages. ``bounced``
is hard (``bounce``) plus soft (``blocked``), split in ``provider``. ``machine_reasons`` says why
machine opens and clicks were judged so (reason → events). ``cta_leads`` is the number of
people whose CTA click (or its confirmation on the continue page) counted as a lead in this
campaign; ``leads`` is the number of leads that *started* with this campaign.

The funnel (``funnel``, ``rates``, ``booked``), ``by_tag`` and ``hourly`` follow the
definitions of :mod:`.figures`; the keys above are a contract with scripts and tests and stay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from newsletter.db import models
from newsletter.reports.figures import analytics, campaign_figures, funnel, rate, rates
from newsletter.reports.queries import TAG_STAGES, first_touch_hours, link_clicks, tag_engagement, tag_ledger

E = models.Event
D = models.Delivery

#: The window of the "first hours" chart, in hours after the campaign started sending.
HOURS = 72


def _event_totals(session: Session, campaign_id: int) -> dict[str, int]:
    rows = session.execute(select(E.type, func.count()).where(E.campaign_id == campaign_id).group_by(E.type)).all()
    return {type_: n for type_, n in rows}


def _links(session: Session, campaign_id: int) -> list[dict[str, Any]]:
    """Per link: people (human, machine) and raw clicks (:func:`.queries.link_clicks`)."""
    L = models.CampaignLink
    counts: dict[int, dict[str, int]] = {}
    for link_id, machine, people, total in session.execute(link_clicks(campaign_id)):
        entry = counts.setdefault(link_id, {"unique_human": 0, "unique_machine": 0, "total": 0})
        entry["unique_machine" if machine else "unique_human"] += people
        entry["total"] += total
    out = []
    for link in session.scalars(select(L).where(L.campaign_id == campaign_id).order_by(L.position)):
        entry = counts.get(link.id, {"unique_human": 0, "unique_machine": 0, "total": 0})
        out.append({"position": link.position, "kind": link.kind, "label": link.label, "url": link.url, **entry})
    return out


def _machine_reasons(session: Session, campaign_id: int) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(E.type, E.machine_reason, func.count())
        .where(E.campaign_id == campaign_id, E.is_machine.is_(True), E.type.in_(("open", "click")))
        .group_by(E.type, E.machine_reason)
    ).all()
    out: dict[str, dict[str, int]] = {"opens": {}, "clicks": {}}
    for type_, reason, n in rows:
        out["opens" if type_ == "open" else "clicks"][reason or "unknown"] = n
    return out


def _unique_where(session: Session, campaign_id: int, *conditions: Any) -> int:
    query = select(func.count(distinct(E.subscriber_id))).where(E.campaign_id == campaign_id, *conditions)
    return session.scalar(query) or 0


def _deferred_messages(session: Session, campaign_id: int) -> int:
    """Messages deferred at least once (one ledger row per subscriber: people are messages)."""
    return (
        session.scalar(
            select(func.count(distinct(E.subscriber_id))).where(E.campaign_id == campaign_id, E.type == "deferred")
        )
        or 0
    )


def _start(session: Session, campaign: models.Campaign) -> datetime | None:
    """When sending began: the campaign's start, else its first accepted message."""
    if campaign.started_at is not None:
        return campaign.started_at
    return session.scalar(select(func.min(D.sent_at)).where(D.campaign_id == campaign.id))


def _hourly(session: Session, campaign: models.Campaign) -> dict[str, Any]:
    """People by the hour of their *first* open or click in the first 72 hours, human and machine.

    First per person, so the series add up to people (the headline unit), not to raw events; a
    person with both a human and a machine open is in both series.
    """
    start = _start(session, campaign)
    series = {f"{kind}_{who}": [0] * HOURS for kind in ("opens", "clicks") for who in ("human", "machine")}
    if start is None:
        return {"start": None, "hours": HOURS, **series, "within": {k: 0 for k in series}}
    for type_, kind in (("open", "opens"), ("click", "clicks")):
        for machine, h, n in session.execute(first_touch_hours(session, campaign.id, type_, start, HOURS)):
            if 0 <= int(h) < HOURS:
                series[f"{kind}_{'machine' if machine else 'human'}"][int(h)] += n
    return {"start": start.isoformat(), "hours": HOURS, **series, "within": {k: sum(v) for k, v in series.items()}}


def _by_tag(session: Session, campaign_id: int) -> list[dict[str, Any]]:
    """The funnel per tag of the recipients (their tags now). A person with two tags is in both rows.

    Rates are of the messages *sent* to the tag (the funnel's are of delivered): two statements,
    recipients and sent per tag (:func:`.queries.tag_ledger`) and the engaged people's stages
    (:func:`.queries.tag_engagement`, which says why)."""
    engaged = {row[0]: row[1:] for row in session.execute(tag_engagement(campaign_id))}
    out = []
    for tag, recipients, sent in session.execute(tag_ledger(campaign_id)):
        counts = engaged.get(tag, (0,) * len(TAG_STAGES))
        row = {
            "tag": tag,
            "recipients": recipients,
            "sent": sent,
            **{k: int(v or 0) for k, v in zip(TAG_STAGES, counts, strict=True)},
        }
        row["rates"] = {k: rate(row[k], sent) for k in TAG_STAGES}
        out.append(row)
    return out


def campaign_report(session: Session, campaign_id: int) -> dict[str, Any]:
    """The figures behind ``newsletter report ID`` (and its ``--json``, ``--csv``, ``--html``)."""
    campaign = session.get(models.Campaign, campaign_id)
    if campaign is None:
        from newsletter.errors import NotFound

        raise NotFound(f"no campaign with id {campaign_id}", where="campaign")
    analytics(session)
    figures = campaign_figures(session, [campaign_id])[campaign_id]
    totals = _event_totals(session, campaign_id)
    leads = (
        session.scalar(select(func.count()).select_from(models.Lead).where(models.Lead.campaign_id == campaign_id)) or 0
    )
    stages = funnel(figures)
    return {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "subject": campaign.subject,
        "status": campaign.status,
        "kind": campaign.kind,
        "segment": campaign.segment,
        "started_at": campaign.started_at.isoformat() if campaign.started_at else None,
        "recipients": figures["recipients"],
        "sent": figures["sent"],
        "failed": figures["failed"],
        "suppressed": figures["suppressed"],
        "ambiguous": figures["ambiguous"],
        "queued": figures["queued"] + figures["in_flight"],
        "delivered": totals.get("delivered", 0),
        "deferred": totals.get("deferred", 0),
        "bounced": totals.get("bounce", 0) + totals.get("blocked", 0),
        "dropped": totals.get("dropped", 0),
        "opens": {
            "unique_human": figures["opened_pixel"],
            "unique_machine": figures["opened_machine"],
            "total": totals.get("open", 0),
        },
        "clicks": {
            "unique": figures["clicked"],
            "unique_machine": figures["clicked_machine"],
            "total": totals.get("click", 0),
            "cta_unique": figures["cta"],
            # human clicks the classifier doubted (classify.DOUBTS); pruned with the event details
            "uncertain": _unique_where(
                session,
                campaign_id,
                E.type == "click",
                E.is_machine.is_(False),
                E.data["doubt"].as_string().is_not(None),
            ),
            "cta_confirmed": figures["cta_confirmed"],
        },
        "machine_reasons": _machine_reasons(session, campaign_id),
        "provider": {
            "processed": totals.get("processed", 0),
            "delivered": totals.get("delivered", 0),
            "deferred": totals.get("deferred", 0),
            "deferred_messages": _deferred_messages(session, campaign_id),
            "bounced_hard": totals.get("bounce", 0),
            "bounced_soft": totals.get("blocked", 0),
            "dropped": totals.get("dropped", 0),
            "spamreport": totals.get("spamreport", 0),
            "unsubscribe": totals.get("unsubscribe", 0),
            "group_unsubscribe": totals.get("group_unsubscribe", 0),
            "group_resubscribe": totals.get("group_resubscribe", 0),
        },
        "unsubscribes": figures["unsubscribed"],
        "complaints": totals.get("spamreport", 0),
        "leads": leads,
        "cta_leads": figures["leads"],
        "booked": figures["booked"],
        "links": _links(session, campaign_id),
        "funnel": stages,
        "rates": rates(stages),
        "cta_machine": figures["cta_machine"],
        "by_tag": _by_tag(session, campaign_id),
        "hourly": _hourly(session, campaign),
    }
