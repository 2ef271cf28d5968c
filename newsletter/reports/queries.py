"""The reports room's hot statements, each named, with why it is shaped as it is.

:mod:`.figures` says what each number *means*; this module says how it is read cheaply. Every
statement here reads one campaign's stretch of ``ix_events_campaign_people`` (campaign, type,
person; migration 0003) or of the ledger's ``(campaign_id, …)`` key, so a report costs the size
of its campaign, not of the events table (the ``report.py`` section of bench/RESULTS.md). The
builders return statements; the callers run them and shape the rows.

Which store a statement is for is asked of :mod:`newsletter.db.dialect` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, Select, and_, case, cast, distinct, exists, false, func, or_, select, text
from sqlalchemy.orm import Session

from newsletter.db import is_postgres, models

E = models.Event
D = models.Delivery
L = models.CampaignLink

#: Lead statuses that count as booked (and "went through booked" in the history).
BOOKED_STATUSES = ("booked", "client")

#: Per transaction, on PostgreSQL. JIT off: it compiles "expensive" plans for 50–200 ms, a loss
#: for statements that finish in tens of milliseconds. More ``work_mem``: a campaign's people are
#: sorted and hashed in memory (the stock 4 MB spills 100,000 of them to disk, three times slower).
REPORT_SETTINGS = (text("SET LOCAL jit = off"), text("SET LOCAL work_mem = '64MB'"))


def analytics(session: Session) -> None:
    """:data:`REPORT_SETTINGS` for this transaction only (nothing to set on SQLite)."""
    if is_postgres(session):
        for setting in REPORT_SETTINGS:
            session.execute(setting)


def cta_link_ids(campaign_ids: Sequence[int]) -> Any:
    """The ids of the campaigns' ``cta`` links, as a subquery (a handful of rows)."""
    return select(L.id).where(L.campaign_id.in_(campaign_ids), L.kind == "cta").scalar_subquery()


def booked_condition() -> Any:
    """A lead that is booked now, or went through ``booked`` (a client who since left still booked)."""
    C = models.LeadStatusChange
    went_through = exists().where(C.lead_id == models.Lead.id, C.to_status == "booked")
    return or_(models.Lead.status.in_(BOOKED_STATUSES), went_through)


# -- the funnel of many campaigns (figures.campaign_figures): one grouped statement per metric ----------


def ledger_per_status(campaign_ids: Sequence[int]) -> Select[*tuple[Any, ...]]:
    """(campaign, status, rows): the ledger's own key, no event read."""
    return (
        select(D.campaign_id, D.status, func.count())
        .where(D.campaign_id.in_(campaign_ids))
        .group_by(D.campaign_id, D.status)
    )


def people_of_type(campaign_ids: Sequence[int], type_: str) -> Select[*tuple[Any, ...]]:
    """(campaign, machine, people) for one event type. One statement per type, not one grouped
    by type: each then reads exactly its own stretch of ``ix_events_campaign_people``, in index
    order, with no sort."""
    return (
        select(E.campaign_id, E.is_machine, func.count(distinct(E.subscriber_id)))
        .where(E.campaign_id.in_(campaign_ids), E.type == type_)
        .group_by(E.campaign_id, E.is_machine)
    )


def people_where(campaign_ids: Sequence[int], *conditions: Any) -> Select[*tuple[Any, ...]]:
    """(campaign, people) with an event matching ``conditions``: for the figures that cross
    types or links (opened = open or click; CTA clicks; unsubscribes)."""
    return (
        select(E.campaign_id, func.count(distinct(E.subscriber_id)))
        .where(E.campaign_id.in_(campaign_ids), *conditions)
        .group_by(E.campaign_id)
    )


def booked_people(campaign_ids: Sequence[int]) -> Select[*tuple[Any, ...]]:
    """(campaign, people) whose human lead event belongs to a lead that is or was booked: the
    campaign's few lead events joined to their leads, not the leads scanned."""
    return (
        select(E.campaign_id, func.count(distinct(E.subscriber_id)))
        .join(models.Lead, models.Lead.subscriber_id == E.subscriber_id)
        .where(E.campaign_id.in_(campaign_ids), E.type == "lead", E.is_machine == false(), booked_condition())
        .group_by(E.campaign_id)
    )


# -- one campaign's detail (campaign.campaign_report) ---------------------------------------------------


def link_clicks(campaign_id: int) -> Select[*tuple[Any, ...]]:
    """(link, machine, people, clicks): counted inside the campaign's own index range, then
    matched to the (few) links in Python, rather than the links joined to every click."""
    return (
        select(E.link_id, E.is_machine, func.count(distinct(E.subscriber_id)), func.count())
        .where(E.campaign_id == campaign_id, E.type == "click")
        .group_by(E.link_id, E.is_machine)
    )


def epoch_us(session: Session, column: Any) -> Any:
    """Microseconds since the epoch, exact on both stores (hour buckets must not wobble)."""
    if is_postgres(session):
        return cast(func.extract("epoch", column) * 1_000_000, BigInteger)
    # SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds, then the microseconds.
    return cast(func.strftime("%s", column), Integer) * 1_000_000 + cast(func.substr(column, 21, 6), Integer)


_HOUR_US = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def first_touch_hours(
    session: Session, campaign_id: int, type_: str, start: datetime, hours: int
) -> Select[*tuple[Any, ...]]:
    """(machine, hour, people) by the hour of each person's *first* event of ``type_`` in the
    first ``hours`` after ``start``. One type per statement: the index's order, no sort; hours
    are computed from exact microseconds (:func:`epoch_us`), the same on both stores."""
    firsts = (
        select(E.is_machine, func.min(E.occurred_at).label("first"))
        .where(
            E.campaign_id == campaign_id,
            E.type == type_,
            E.occurred_at >= start,
            E.occurred_at < start + timedelta(hours=hours),
        )
        .group_by(E.is_machine, E.subscriber_id)
        .subquery()
    )
    start_us = (start - _EPOCH) // timedelta(microseconds=1)
    hour = ((epoch_us(session, firsts.c.first) - start_us) // _HOUR_US).label("hour")
    return select(firsts.c.is_machine, hour, func.count()).group_by(firsts.c.is_machine, hour)


#: The engaged stages per tag, in the order :func:`tag_engagement` returns their sums.
TAG_STAGES = ("opened", "clicked", "cta", "leads")


def tag_engagement(campaign_id: int) -> Select[*tuple[Any, ...]]:
    """(tag, opened, clicked, cta, leads): the campaign's engaged people (human events only),
    one row each with a flag per stage, then joined to their tags. Grouping every delivered
    event by person as well tripled the report's time on a campaign of 100,000, so the tag
    rates are of messages *sent* (:func:`tag_ledger`)."""
    T = models.SubscriberTag

    def flag(condition: Any) -> Any:
        return func.max(case((condition, 1), else_=0))

    people = (
        select(
            E.subscriber_id,
            flag(E.type != "lead").label("opened"),
            flag(E.type == "click").label("clicked"),
            flag(and_(E.type == "click", E.link_id.in_(cta_link_ids([campaign_id])))).label("cta"),
            flag(E.type == "lead").label("leads"),
        )
        .where(E.campaign_id == campaign_id, E.type.in_(("open", "click", "lead")), E.is_machine == false())
        .group_by(E.subscriber_id)
        .subquery()
    )
    return (
        select(T.tag, *(func.sum(people.c[stage]) for stage in TAG_STAGES))
        .select_from(people)
        .join(T, T.subscriber_id == people.c.subscriber_id)
        .group_by(T.tag)
    )


def tag_ledger(campaign_id: int) -> Select[*tuple[Any, ...]]:
    """(tag, recipients, sent) from the ledger × tags: what was sent per tag, at no event cost."""
    T = models.SubscriberTag
    return (
        select(T.tag, func.count(), func.count().filter(D.status == "sent"))
        .select_from(D)
        .join(T, T.subscriber_id == D.subscriber_id)
        .where(D.campaign_id == campaign_id)
        .group_by(T.tag)
        .order_by(T.tag)
    )
