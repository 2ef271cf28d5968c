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
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from newsletter.db import models

E = models.Event
D = models.Delivery


def _unique_subscribers(session: Session, campaign_id: int, type_: str, *, machine: bool | None = None,
                        link_kind: str | None = None) -> int:
    query = select(func.count(distinct(E.subscriber_id))).where(E.campaign_id == campaign_id, E.type == type_)
    if machine is not None:
        query = query.where(E.is_machine == machine)
    if link_kind is not None:
        query = query.join(models.CampaignLink, models.CampaignLink.id == E.link_id).where(models.CampaignLink.kind == link_kind)
    return session.scalar(query) or 0


def _event_totals(session: Session, campaign_id: int) -> dict[str, int]:
    rows = session.execute(select(E.type, func.count()).where(E.campaign_id == campaign_id).group_by(E.type)).all()
    return {type_: n for type_, n in rows}


def _ledger(session: Session, campaign_id: int) -> dict[str, int]:
    rows = session.execute(select(D.status, func.count()).where(D.campaign_id == campaign_id).group_by(D.status)).all()
    counts = {s: 0 for s in models.DELIVERY_STATUSES}
    counts.update(dict(rows))
    return counts


def _links(session: Session, campaign_id: int) -> list[dict[str, Any]]:
    L = models.CampaignLink
    human = func.count(distinct(E.subscriber_id)).filter(E.is_machine.is_(False))
    rows = session.execute(
        select(L.position, L.kind, L.label, L.url, human, func.count(E.id))
        .outerjoin(E, (E.link_id == L.id) & (E.type == "click"))
        .where(L.campaign_id == campaign_id)
        .group_by(L.id, L.position, L.kind, L.label, L.url)
        .order_by(L.position)
    ).all()
    return [{"position": p, "kind": k, "label": lab, "url": u, "unique_human": h, "total": t} for p, k, lab, u, h, t in rows]


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
    return session.scalar(select(func.count(distinct(E.delivery_id)))
                          .where(E.campaign_id == campaign_id, E.type == "deferred")) or 0


def campaign_report(session: Session, campaign_id: int) -> dict[str, Any]:
    """The figures behind ``newsletter report ID`` (and its ``--json``)."""
    campaign = session.get(models.Campaign, campaign_id)
    if campaign is None:
        from newsletter.errors import NotFound

        raise NotFound(f"no campaign with id {campaign_id}", where="campaign")
    ledger = _ledger(session, campaign_id)
    totals = _event_totals(session, campaign_id)
    leads = session.scalar(select(func.count()).select_from(models.Lead).where(models.Lead.campaign_id == campaign_id)) or 0
    return {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "subject": campaign.subject,
        "status": campaign.status,
        "recipients": sum(ledger.values()),
        "sent": ledger["sent"],
        "failed": ledger["failed"],
        "suppressed": ledger["suppressed"],
        "ambiguous": ledger["ambiguous"],
        "queued": ledger["queued"] + ledger["in_flight"],
        "delivered": totals.get("delivered", 0),
        "deferred": totals.get("deferred", 0),
        "bounced": totals.get("bounce", 0) + totals.get("blocked", 0),
        "dropped": totals.get("dropped", 0),
        "opens": {
            "unique_human": _unique_subscribers(session, campaign_id, "open", machine=False),
            "unique_machine": _unique_subscribers(session, campaign_id, "open", machine=True),
            "total": totals.get("open", 0),
        },
        "clicks": {
            "unique": _unique_subscribers(session, campaign_id, "click", machine=False),
            "unique_machine": _unique_subscribers(session, campaign_id, "click", machine=True),
            "total": totals.get("click", 0),
            "cta_unique": _unique_subscribers(session, campaign_id, "click", machine=False, link_kind="cta"),
            # human clicks the classifier doubted (classify.DOUBTS); pruned with the event details
            "uncertain": _unique_where(session, campaign_id, E.type == "click", E.is_machine.is_(False),
                                       E.data["doubt"].as_string().is_not(None)),
            "cta_confirmed": _unique_where(session, campaign_id, E.type == "cta_confirm", E.is_machine.is_(False)),
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
        "unsubscribes": _unique_subscribers(session, campaign_id, "unsubscribe"),
        "complaints": totals.get("spamreport", 0),
        "leads": leads,
        "cta_leads": _unique_where(session, campaign_id, E.type == "lead", E.is_machine.is_(False)),
        "links": _links(session, campaign_id),
    }
