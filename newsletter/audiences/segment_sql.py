"""Segments compiled to SQL: a :class:`~newsletter.audiences.segments.Segment`'s rules as one
WHERE condition over ``models.Subscriber``.

The other half of segments (``segments``: the YAML format, its validation and the folder) never
touches the store; this half never reads a file. Every value is bound as a parameter: a segment
file can never inject SQL. Tags and engagement are ``EXISTS`` over ``subscriber_tags`` and
``events``; attributes are JSON extraction compared as text.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import ColumnElement, Select, String, and_, cast, exists, func, select
from sqlalchemy.orm import Session

from newsletter.audiences.segments import AttributeRule, Segment
from newsletter.db.models import CampaignLink, Event, Subscriber, SubscriberTag

# The event types and link kind the engagement rules read (written by the tracking room).
OPEN_EVENT = "open"
CLICK_EVENT = "click"
CTA_LINK_KIND = "cta"


def _has_tag(tags: tuple[str, ...]) -> ColumnElement[bool]:
    return exists().where(SubscriberTag.subscriber_id == Subscriber.id, SubscriberTag.tag.in_(tags))


def _attribute(rule: AttributeRule) -> ColumnElement[bool]:
    # ->> on PostgreSQL, JSON_EXTRACT on SQLite; as text on both (SQLite would return numbers as numbers).
    value = cast(Subscriber.attributes[rule.key].as_string(), String)
    tests = []
    if rule.equals is not None:
        tests.append(value == rule.equals)
    if rule.one_of is not None:
        tests.append(value.in_(rule.one_of))
    if rule.exists is not None:
        tests.append(value.is_not(None) if rule.exists else value.is_(None))
    return and_(*tests)


def _engaged(event_type: str, since: datetime, *, cta: bool = False) -> ColumnElement[bool]:
    query = exists().where(
        Event.subscriber_id == Subscriber.id,
        Event.type == event_type,
        Event.is_machine.is_(False),
        Event.occurred_at >= since,
    )
    if cta:
        query = query.where(CampaignLink.id == Event.link_id, CampaignLink.kind == CTA_LINK_KIND)
    return query


def segment_condition(segment: Segment, now: datetime | None = None) -> ColumnElement[bool]:
    """A WHERE condition over ``Subscriber`` selecting the segment's members.

    ``now`` (time-zone aware; default: the current time) anchors the engagement windows.
    """
    if now is None:
        now = datetime.now(timezone.utc)
    elif now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    rules = segment.rules
    clauses: list[ColumnElement[bool]] = [
        Subscriber.status == rules.status[0] if len(rules.status) == 1 else Subscriber.status.in_(rules.status)
    ]
    if rules.tags_any:
        clauses.append(_has_tag(rules.tags_any))
    clauses.extend(_has_tag((tag,)) for tag in rules.tags_all)
    if rules.tags_none:
        clauses.append(~_has_tag(rules.tags_none))
    clauses.extend(_attribute(rule) for rule in rules.attributes)
    if rules.joined_after is not None:
        clauses.append(Subscriber.created_at >= rules.joined_after)
    if rules.joined_before is not None:
        clauses.append(Subscriber.created_at < rules.joined_before)
    if rules.opened_within_days is not None:
        clauses.append(_engaged(OPEN_EVENT, now - timedelta(days=rules.opened_within_days)))
    if rules.clicked_within_days is not None:
        clauses.append(_engaged(CLICK_EVENT, now - timedelta(days=rules.clicked_within_days)))
    if rules.clicked_cta_within_days is not None:
        clauses.append(_engaged(CLICK_EVENT, now - timedelta(days=rules.clicked_cta_within_days), cta=True))
    return and_(*clauses)


def segment_subscriber_ids(segment: Segment, now: datetime | None = None) -> Select[int]:
    """``SELECT subscribers.id WHERE <segment>``, ready for ``INSERT ... SELECT``."""
    return select(Subscriber.id).where(segment_condition(segment, now))


def count_segment(session: Session, segment: Segment, now: datetime | None = None) -> int:
    """How many subscribers the segment selects right now."""
    query = select(func.count()).select_from(Subscriber).where(segment_condition(segment, now))
    return int(session.scalar(query) or 0)
