"""Unsubscribes: one-click (RFC 8058), the footer link and the preferences page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import update
from sqlalchemy.orm import Session

from newsletter.audiences import add_suppressions
from newsletter.db import rows_changed
from newsletter.db.models import Delivery, Subscriber, utcnow
from newsletter.tracking.classify import Verdict
from newsletter.tracking.events import RequestInfo, UnknownDelivery, insert_event
from newsletter.tracking.options import DEFAULT_OPTIONS, TrackingOptions

UNSUBSCRIBE_SOURCES = ("one_click", "link", "preferences")
#: Statuses an unsubscribe moves to "unsubscribed". Bounced, complained and erased subscribers
#: are already suppressed; overwriting their status would lose why.
_UNSUBSCRIBABLE = ("active", "pending")


@dataclass(frozen=True)
class UnsubscribeResult:
    subscriber_id: int
    changed: bool  # False when the subscriber was already unsubscribed and suppressed
    suppressed_deliveries: int  # queued deliveries taken out of the ledger by this call


def unsubscribe(
    session: Session,
    delivery_id: int,
    *,
    source: Literal["one_click", "link", "preferences"],
    request: RequestInfo | None = None,
    now: datetime | None = None,
    options: TrackingOptions = DEFAULT_OPTIONS,
) -> UnsubscribeResult:
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
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise UnknownDelivery(f"no delivery {delivery_id}")
    subscriber = session.get(Subscriber, delivery.subscriber_id)
    if subscriber is None:  # pragma: no cover - deleting a subscriber takes its ledger rows with it
        raise UnknownDelivery(f"delivery {delivery_id} has no subscriber")
    if subscriber.status == "erased":  # nothing personal left to act on
        return UnsubscribeResult(subscriber.id, changed=False, suppressed_deliveries=0)

    status_changed = (
        rows_changed(
            session,
            (
                update(Subscriber)
                .where(Subscriber.id == subscriber.id, Subscriber.status.in_(_UNSUBSCRIBABLE))
                .values(status="unsubscribed", status_changed_at=now, updated_at=now)
            ),
        )
        == 1
    )

    suppression_added = (
        add_suppressions(
            session, [{"email": subscriber.email, "reason": "unsubscribed", "source": source, "created_at": now}]
        )
        > 0
    )

    suppressed = rows_changed(
        session,
        (
            update(Delivery)
            .where(Delivery.subscriber_id == subscriber.id, Delivery.status == "queued")
            .values(status="suppressed", error="unsubscribed", updated_at=now)
            .execution_options(synchronize_session=False)
        ),
    )

    changed = status_changed or suppression_added
    if changed:
        insert_event(
            session,
            type_="unsubscribe",
            campaign_id=delivery.campaign_id,
            delivery_id=delivery.id,
            subscriber_id=delivery.subscriber_id,
            verdict=Verdict(False, None),
            request=request,
            now=now,
            options=options,
            data={"source": source},
        )
    return UnsubscribeResult(subscriber.id, changed=changed, suppressed_deliveries=suppressed)
