"""Opens, clicks and unsubscribes: what the tracking routes record.

Plain functions over a SQLAlchemy ``Session``; the caller owns the transaction (the web app
uses ``session_scope``). Nothing here knows about HTTP beyond :class:`RequestInfo`.

Each call stores one ``events`` row with our own ``event_key`` (a uuid4), the human/machine
verdict (:mod:`.classify`), the truncated address (:mod:`.privacy`) and the user agent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.db.models import CampaignLink, Delivery, Event, Lead, Subscriber, Suppression, utcnow
from newsletter.tracking.classify import Verdict, classify
from newsletter.tracking.privacy import truncate_ip

USER_AGENT_MAX = 500
UNSUBSCRIBE_SOURCES = ("one_click", "link", "preferences")
#: Statuses an unsubscribe moves to "unsubscribed". Bounced, complained and erased subscribers
#: are already suppressed; overwriting their status would lose why.
_UNSUBSCRIBABLE = ("active", "pending")


class UnknownDelivery(LookupError):
    """A validly signed token whose ledger row no longer exists."""


class UnknownLink(LookupError):
    """No link with that position is registered for the delivery's campaign."""


@dataclass(frozen=True)
class RequestInfo:
    """What the tracking functions need of a request. ``ip`` is the full address; only its
    network is ever stored."""

    ip: str | None = None
    user_agent: str | None = None
    method: str = "GET"


@dataclass(frozen=True)
class ClickResult:
    url: str  # the registered URL: the only place a click may redirect to
    link_kind: str
    lead_id: int | None  # the lead created or warmed by a human CTA click
    is_machine: bool
    reason: str | None = None


@dataclass(frozen=True)
class UnsubscribeResult:
    subscriber_id: int
    changed: bool  # False when the subscriber was already unsubscribed and suppressed
    suppressed_deliveries: int  # queued deliveries taken out of the ledger by this call


def _delivery(session: Session, delivery_id: int) -> Delivery:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise UnknownDelivery(f"no delivery {delivery_id}")
    return delivery


def _seconds_since_sent(delivery: Delivery, now: datetime) -> float | None:
    return (now - delivery.sent_at).total_seconds() if delivery.sent_at else None


def _clip_agent(user_agent: str | None) -> str | None:
    agent = (user_agent or "").strip()
    return agent[:USER_AGENT_MAX] or None


def _store_event(session: Session, kind: str, delivery: Delivery, verdict: Verdict, request: RequestInfo | None,
                 now: datetime, *, link_id: int | None = None, data: dict[str, Any] | None = None) -> Event:
    request = request or RequestInfo()
    event = Event(
        event_key=uuid.uuid4().hex, type=kind, source="tracking",
        campaign_id=delivery.campaign_id, delivery_id=delivery.id, subscriber_id=delivery.subscriber_id,
        link_id=link_id, is_machine=verdict.is_machine, machine_reason=verdict.reason,
        ip_prefix=truncate_ip(request.ip), user_agent=_clip_agent(request.user_agent),
        occurred_at=now, data=data,
    )
    session.add(event)
    return event


def _dialect_insert(session: Session):  # type: ignore[no-untyped-def]
    """``INSERT … ON CONFLICT`` for the store in use (same API on both dialects)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the project supports these two stores only
        raise NotImplementedError(f"no upsert for {name}")
    return insert


def record_open(session: Session, delivery_id: int, request: RequestInfo, now: datetime | None = None) -> Verdict:
    """Store one open for ``delivery_id``; returns the verdict. Raises :class:`UnknownDelivery`."""
    now = now or utcnow()
    delivery = _delivery(session, delivery_id)
    verdict = classify(kind="open", user_agent=request.user_agent, ip=request.ip, method=request.method,
                       seconds_since_sent=_seconds_since_sent(delivery, now))
    _store_event(session, "open", delivery, verdict, request, now)
    return verdict


def record_click(session: Session, delivery_id: int, position: int, request: RequestInfo,
                 now: datetime | None = None) -> ClickResult:
    """Store one click on the campaign's link number ``position`` and say where to redirect.

    Raises :class:`UnknownLink` when the campaign has no such link (the web answers 404: a click
    never redirects anywhere that was not registered) and :class:`UnknownDelivery`. A human click
    on a ``cta`` link creates the subscriber's lead or warms it; a machine click never does.
    """
    now = now or utcnow()
    delivery = _delivery(session, delivery_id)
    link = session.scalar(select(CampaignLink).where(CampaignLink.campaign_id == delivery.campaign_id,
                                                     CampaignLink.position == position))
    if link is None:
        raise UnknownLink(f"campaign {delivery.campaign_id} has no link {position}")
    verdict = classify(kind="click", user_agent=request.user_agent, ip=request.ip, method=request.method,
                       seconds_since_sent=_seconds_since_sent(delivery, now), link_kind=link.kind)
    _store_event(session, "click", delivery, verdict, request, now, link_id=link.id, data={"position": position})
    lead_id = None
    if link.kind == "cta" and not verdict.is_machine:
        lead_id = _create_or_warm_lead(session, delivery, link, now)
    return ClickResult(url=link.url, link_kind=link.kind, lead_id=lead_id, is_machine=verdict.is_machine,
                       reason=verdict.reason)


def _create_or_warm_lead(session: Session, delivery: Delivery, link: CampaignLink, now: datetime) -> int:
    """One statement, so two simultaneous first clicks make one lead with two clicks.

    ``leads.subscriber_id`` is unique; ``INSERT … ON CONFLICT (subscriber_id) DO UPDATE`` is
    atomic on both stores, where a read-then-insert would race. The lead keeps the campaign and
    link it came from first; later clicks only warm it.
    """
    insert = _dialect_insert(session)
    statement = insert(Lead).values(
        subscriber_id=delivery.subscriber_id, campaign_id=delivery.campaign_id, link_id=link.id,
        status="new", score=0, cta_clicks=1, created_at=now, updated_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[Lead.subscriber_id],
        set_={"cta_clicks": Lead.cta_clicks + 1, "updated_at": now},
    ).returning(Lead.id)
    return int(session.execute(statement).scalar_one())


def unsubscribe(session: Session, delivery_id: int, *, source: Literal["one_click", "link", "preferences"],
                request: RequestInfo | None = None, now: datetime | None = None) -> UnsubscribeResult:
    """Unsubscribe the delivery's subscriber; safe to repeat (mail providers retry one-click POSTs).

    Sets the status (active or pending → unsubscribed, with ``status_changed_at``), adds a
    suppression if the address has none, marks the subscriber's still-queued deliveries of every
    campaign ``suppressed`` and stores one ``unsubscribe`` event. A repeat finds nothing to
    change and stores nothing. Each step is a conditional statement, so two simultaneous
    requests cannot both count.
    """
    if source not in UNSUBSCRIBE_SOURCES:
        raise ValueError(f"source must be one of {UNSUBSCRIBE_SOURCES}, not {source!r}")
    now = now or utcnow()
    delivery = _delivery(session, delivery_id)
    subscriber = session.get(Subscriber, delivery.subscriber_id)
    if subscriber is None:  # pragma: no cover - the foreign key cascades
        raise UnknownDelivery(f"delivery {delivery_id} has no subscriber")
    if subscriber.status == "erased":  # nothing personal left to act on
        return UnsubscribeResult(subscriber.id, changed=False, suppressed_deliveries=0)

    status_changed = session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber.id, Subscriber.status.in_(_UNSUBSCRIBABLE))
        .values(status="unsubscribed", status_changed_at=now, updated_at=now)
    ).rowcount == 1

    insert = _dialect_insert(session)
    suppression_added = session.execute(
        insert(Suppression)
        .values(email=subscriber.email, reason="unsubscribed", source=source, created_at=now)
        .on_conflict_do_nothing(index_elements=[Suppression.email])
        .returning(Suppression.id)
    ).first() is not None

    suppressed = session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber.id, Delivery.status == "queued")
        .values(status="suppressed", error="unsubscribed", updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount

    changed = status_changed or suppression_added
    if changed:
        _store_event(session, "unsubscribe", delivery, Verdict(False, None), request, now, data={"source": source})
    return UnsubscribeResult(subscriber.id, changed=changed, suppressed_deliveries=suppressed)
