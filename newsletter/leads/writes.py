"""Every write that creates a lead row, or takes one back, in one place.

A lead is created two ways, both here: a person's click on a campaign's call to action
(:func:`warm_lead_from_click`, called by ``tracking`` in the same transaction as the click) and
a signup that asks for a consultation (:func:`insert_signup_lead`, called by
:func:`newsletter.leads.model.create_signup_lead`). Both are one ``INSERT … ON CONFLICT
(subscriber_id)`` statement built by :func:`_lead_insert`, so two simultaneous first requests make
one lead; they differ only in what a conflict does (a click warms the lead, a signup leaves it
alone) and in how the lead's first history row is written.

The functions take plain ids and values and the caller's session or connection, and import
nothing from ``tracking``: ``tracking`` calls down into this room's face, never the reverse
(docs/architecture.md, "map").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    case,
    delete,
    exists,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.db.dialect import upsert_insert
from newsletter.db.models import Lead, LeadStatusChange

Db = Session | Connection

_LEADS = cast(Table, Lead.__table__)
_HISTORY = cast(Table, LeadStatusChange.__table__)


def _lead_insert(db: Db, **values: Any) -> Any:
    """``INSERT INTO leads`` with ``ON CONFLICT`` support for the store in use (which store:
    ``db.dialect``, the one place that answers it)."""
    return upsert_insert(db)(Lead).values(**values)


def warm_lead_from_click(db: Db, subscriber_id: int, campaign_id: int, link_id: int | None, now: datetime) -> int:
    """Create the subscriber's lead from a human CTA click, or warm it; return its id.

    One statement, so two simultaneous first clicks make one lead with two clicks.
    ``leads.subscriber_id`` is unique; ``INSERT … ON CONFLICT (subscriber_id) DO UPDATE`` is
    atomic on both stores, where a read-then-insert would race. The lead keeps the campaign and
    link it came from first (a lead without one, from a signup, takes this click's); later
    clicks only warm it. ``last_engaged_at`` moves forward, never back (batches may arrive out
    of order). The lead's first history row follows in the same transaction
    (:func:`_record_click_creation`).
    """
    statement = _lead_insert(
        db,
        subscriber_id=subscriber_id,
        campaign_id=campaign_id,
        link_id=link_id,
        status="new",
        score=0,
        cta_clicks=1,
        source="cta_click",
        last_engaged_at=now,
        status_changed_at=now,
        created_at=now,
        updated_at=now,
    )
    has_campaign = Lead.campaign_id.is_not(None)
    statement = statement.on_conflict_do_update(
        index_elements=[Lead.subscriber_id],
        set_={
            "cta_clicks": Lead.cta_clicks + 1,
            "updated_at": now,
            "campaign_id": case((has_campaign, Lead.campaign_id), else_=statement.excluded.campaign_id),
            "link_id": case((has_campaign, Lead.link_id), else_=statement.excluded.link_id),
            "last_engaged_at": case(
                (Lead.last_engaged_at > statement.excluded.last_engaged_at, Lead.last_engaged_at),
                else_=statement.excluded.last_engaged_at,
            ),
        },
    ).returning(Lead.id)
    lead_id = int(db.execute(statement).scalar_one())
    _record_click_creation(db, lead_id)
    return lead_id


def _record_click_creation(db: Db, lead_id: int) -> None:
    """The lead's creation in ``lead_status_changes`` (nothing → new, by ``system:cta_click``),
    written only when the lead has no history yet, i.e. this click created it.

    Race-safe with the upsert above, in the caller's transaction: a second first click waits on
    the unique index until the first one's transaction (lead and history row) commits, then this
    statement, with a fresh snapshot (READ COMMITTED), sees that history row and adds nothing;
    SQLite runs one writer at a time. ``changed_at`` is the lead's own ``created_at``.
    """
    db.execute(
        insert(_HISTORY).from_select(
            ["lead_id", "from_status", "to_status", "changed_by", "changed_at"],
            select(_LEADS.c.id, null(), literal("new"), literal("system:cta_click"), _LEADS.c.created_at).where(
                _LEADS.c.id == lead_id, ~exists().where(_HISTORY.c.lead_id == lead_id)
            ),
        )
    )


def take_back_click_lead(db: Db, subscriber_id: int, now: datetime) -> None:
    """A click counted as a person's turned out to be a scanner's burst: take its CTA click off
    the subscriber's lead, and remove the lead when that click was all it had. A lead from a
    signup, or one staff have moved on from ``new``, stays."""
    db.execute(
        update(_LEADS)
        .where(_LEADS.c.subscriber_id == subscriber_id)
        .values(cta_clicks=_LEADS.c.cta_clicks - 1, updated_at=now)
    )
    db.execute(
        delete(_LEADS).where(
            _LEADS.c.subscriber_id == subscriber_id,
            _LEADS.c.cta_clicks <= 0,
            _LEADS.c.status == "new",
            _LEADS.c.source == "cta_click",
        )
    )  # a signup stays


def insert_signup_lead(
    session: Session, subscriber_id: int, *, source: str, note: str | None, by: str, now: datetime
) -> int | None:
    """Create a ``new`` lead for a signup (or staff) and its first history row, by ``by``.

    ``ON CONFLICT DO NOTHING``: a subscriber who already is a lead keeps it unchanged, and a
    double-submitted form makes one lead. Returns the new lead's id, or None when there was one.
    """
    lead_id = session.execute(
        _lead_insert(
            session,
            subscriber_id=subscriber_id,
            status="new",
            score=0,
            cta_clicks=0,
            source=source,
            note=note,
            status_changed_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Lead.subscriber_id])
        .returning(Lead.id)
    ).scalar()
    if lead_id is None:
        return None
    session.execute(
        insert(LeadStatusChange).values(
            lead_id=lead_id, from_status=None, to_status="new", changed_by=by, note=note, changed_at=now
        )
    )
    return int(lead_id)
