"""Lead scores: what a person did, recent things weighing more. Machines never score.

Each of a lead's human events earns points (``NEWSLETTER_LEAD_POINTS``, default
``open=1,click=3,cta=10``), halved for every ``NEWSLETTER_LEAD_HALF_LIFE_DAYS`` (default 14) of
age at ``now``::

    score = Σ points(event) × 0.5 ^ (age_days / half_life_days)

rounded to a whole number when stored in ``leads.score``.

What counts, from the subscriber's ``events`` rows written by our own tracking
(``source = 'tracking'``) with ``is_machine`` false:

* ``open``: every human open (a re-read is interest too);
* ``click``: a human click on any link but the call to action;
* ``cta``: each ``lead`` event, i.e. a CTA click that counted as a person, at once or after the
  "continue to booking" step. The CTA's own click row is not counted again, so a direct click
  and a confirmed one earn the same.

Machine opens and clicks (scanners, prefetchers, bursts, the honeypot) earn nothing, and a
click later found to be part of a burst loses its points at the next rescoring. Events after
``now`` are ignored; events older than ten half-lives (under 0.1 % of their points) are not
read at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, case, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db.models import CampaignLink, Event, Lead, UTCDateTime
from newsletter.errors import UserError
from newsletter.settings_types import parse_points

# parse_points is the face's name for the one points parser; config parses the setting with it.
__all__ = [
    "HORIZON_HALF_LIVES",
    "ScoreRules",
    "engagement_score",
    "event_kind",
    "lead_scores",
    "parse_points",
    "score_leads",
    "stored_score",
]

HORIZON_HALF_LIVES = 10


@dataclass(frozen=True)
class ScoreRules:
    points: dict[str, float]
    half_life_days: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ScoreRules:
        return cls(dict(settings.point_values), _half_life(settings.lead_half_life_days))

    def weight(self, kind: str, age: timedelta) -> float:
        """Points for one event of ``kind`` that happened ``age`` ago."""
        days = max(age.total_seconds(), 0.0) / 86400.0
        decay: float = 0.5 ** (days / self.half_life_days)  # typeshed types float ** float as Any
        return self.points.get(kind, 0.0) * decay

    @property
    def horizon(self) -> timedelta:
        return timedelta(days=self.half_life_days * HORIZON_HALF_LIVES)


def _half_life(days: float) -> float:
    if not math.isfinite(days) or days <= 0:
        raise UserError(f"must be a positive number of days, got {days!r}", where="NEWSLETTER_LEAD_HALF_LIFE_DAYS")
    return float(days)


def event_kind(event_type: str, link_kind: str | None) -> str | None:
    """Which points a human event earns, or None (a click on the CTA scores through its lead event)."""
    if event_type == "open":
        return "open"
    if event_type == "lead":
        return "cta"
    if event_type == "click" and link_kind != "cta":
        return "click"
    return None


def engagement_score(events: Iterable[tuple[str, datetime]], now: datetime, rules: ScoreRules) -> float:
    """The exact score of ``(kind, occurred_at)`` pairs at ``now`` (pure: no store, no clock)."""
    return sum(rules.weight(kind, now - when) for kind, when in events if when <= now)


_HUMAN_EVENTS = (
    select(Lead.id, Event.type, Event.occurred_at, CampaignLink.kind)
    .join(Event, Event.subscriber_id == Lead.subscriber_id)
    .outerjoin(CampaignLink, CampaignLink.id == Event.link_id)
    .where(
        Event.is_machine.is_(False),
        Event.source == "tracking",
        Event.type.in_(("open", "click", "lead")),
        Event.occurred_at > bindparam("since", type_=UTCDateTime()),
        Event.occurred_at <= bindparam("until", type_=UTCDateTime()),
    )
)


def lead_scores(session: Session, now: datetime, rules: ScoreRules) -> dict[int, tuple[float, datetime | None]]:
    """Every lead's exact score at ``now`` and its newest scored event (None: nothing scored)."""
    scores: dict[int, tuple[float, datetime | None]] = {
        lead_id: (0.0, None) for lead_id in session.scalars(select(Lead.id))
    }
    for lead_id, event_type, occurred_at, link_kind in session.execute(
        _HUMAN_EVENTS, {"since": now - rules.horizon, "until": now}
    ):
        kind = event_kind(event_type, link_kind)
        if kind is None or lead_id not in scores:
            continue
        total, newest = scores[lead_id]
        scores[lead_id] = (
            total + rules.weight(kind, now - occurred_at),
            occurred_at if newest is None or occurred_at > newest else newest,
        )
    return scores


def stored_score(value: float) -> int:
    """Half up, not Python's banker's rounding: 12.5 is stored as 13 whatever the parity."""
    return int(math.floor(value + 0.5))


def score_leads(session: Session, now: datetime, settings: Settings) -> int:
    """Recompute every lead's stored ``score`` (and ``last_engaged_at``, the newest event scored,
    which only ever moves forward) at ``now``; returns how many leads changed. ``updated_at`` is left alone: a score drifting
    with time is not an edit. Runs in the caller's transaction."""
    rules = ScoreRules.from_settings(settings)
    current = {
        row.id: (row.score, row.last_engaged_at)
        for row in session.execute(select(Lead.id, Lead.score, Lead.last_engaged_at))
    }
    changes = []
    for lead_id, (exact, newest) in lead_scores(session, now, rules).items():
        if lead_id not in current:
            continue
        old_score, old_engaged = current[lead_id]
        engaged = newest if newest is not None and (old_engaged is None or newest > old_engaged) else old_engaged
        score = stored_score(exact)
        if score != old_score or engaged != old_engaged:
            changes.append({"lead": lead_id, "new_score": score, "engaged": engaged})
    if changes:
        leads = cast(Table, Lead.__table__)  # Core executemany: one statement, no ORM objects
        engaged = bindparam("engaged", type_=UTCDateTime())
        session.execute(
            update(leads)
            .where(leads.c.id == bindparam("lead"))
            # never backwards: a CTA click committed since this read already set a newer time
            .values(
                score=bindparam("new_score"),
                updated_at=leads.c.updated_at,
                last_engaged_at=case((leads.c.last_engaged_at > engaged, leads.c.last_engaged_at), else_=engaged),
            ),
            changes,
        )
    return len(changes)
