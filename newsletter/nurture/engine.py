"""The nurture tick: enroll new leads, fire exit rules, send the steps that are due.

Entry and exits (and ``enroll`` / ``remove`` by hand) live in :mod:`newsletter.nurture.enrollment`;
this module runs the tick, advances due steps and sends them.

``nurture_tick(engine, settings, now, transport=None)`` is what the scheduler daemon runs every
``NEWSLETTER_NURTURE_TICK_SECONDS`` (and ``newsletter nurture tick`` runs once). ``now`` is
always given, never read from a clock here, so tests and the simulator control time.

Exactly once, whatever restarts:

* Enrollment is ``INSERT … ON CONFLICT DO NOTHING`` on (sequence, subscriber): a reader enters
  a sequence once, ever.
* A due step is one transaction: a guarded ``UPDATE`` moves the enrollment past the step (only
  if it is still at that step, so of two schedulers only one wins) and an ``INSERT … ON
  CONFLICT DO NOTHING`` adds the ledger row (step campaign, subscriber). The ledger's unique
  constraint is what makes "never twice" true.
* Sending is the campaigns' own dispatcher on every step campaign that has queued rows, after
  that commit. A crash between the two leaves a queued row, which the next tick (or any
  ``newsletter worker``) sends; a crash during the send leaves it in flight, and it becomes
  ``ambiguous`` when its lease runs out, never resent without an operator.
* Exits are set-based updates on every tick, not only when a step is due, and they take the
  reader's still-queued nurture rows out of the ledger (``suppressed``): an exit stops at once.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import Engine, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from newsletter.campaigns import dispatch_campaign, finish_if_done, make_throttle, make_transport
from newsletter.config import Settings
from newsletter.db import models, rows_changed, session_scope
from newsletter.db.dialect import upsert_insert
from newsletter.delivery import Transport
from newsletter.errors import UserError
from newsletter.nurture.clock import QuietHours, zone
from newsletter.nurture.enrollment import enroll, enroll_new_leads, fire_exits, remove
from newsletter.nurture.plan import Facts, decide, following
from newsletter.nurture.sequence_reader import load_all
from newsletter.nurture.sequences import Sequence
from newsletter.nurture.steps import ensure_step_campaigns

log = logging.getLogger(__name__)

E = models.NurtureEnrollment
S = models.Subscriber
D = models.Delivery
EV = models.Event
C = models.Campaign

#: Due enrollments handled per sequence per tick; the rest wait for the next tick.
DUE_PER_TICK = 500
#: Step campaign statuses the tick may (re)start sending; paused and cancelled are an operator's.
RUNNABLE = ("draft", "sending", "sent", "missed")


@dataclass
class TickResult:
    enrolled: int = 0
    exited: dict[str, int] = field(default_factory=dict)  # exit reason -> enrollments
    queued: int = 0  # steps put in the ledger this tick
    skipped: int = 0
    waiting: int = 0
    deferred: int = 0
    held: int = 0  # step campaign paused by an operator
    completed: int = 0
    sent: int = 0  # rows the transport accepted (this tick's and any left queued before)
    failed: int = 0
    suppressed: int = 0
    ambiguous: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def exit(self, reason: str, count: int = 1) -> None:
        if count:
            self.exited[reason] = self.exited.get(reason, 0) + count


# --- the tick --------------------------------------------------------------------------------


def nurture_tick(engine: Engine, settings: Settings, now: datetime, transport: Transport | None = None) -> TickResult:
    """One pass over every sequence; safe to run from several processes at once."""
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    quiet = settings.quiet  # parsed and checked when the settings were loaded, like settings.zone
    sequences, errors = load_all(settings.audiences_dir, settings.templates_dir)
    for error in errors:  # a broken file is skipped; its readers wait until it is fixed
        log.error("nurture sequence file skipped: %s", error)
    result = TickResult(errors=list(errors))
    for sequence in sequences:
        try:
            enroll_new_leads(engine, settings, sequence, now, quiet, result)
            fire_exits(engine, sequence, now, result)
            advance_due(engine, settings, sequence, now, quiet, result)
        except UserError as error:  # a template that does not render: say so, keep the others going
            log.error("nurture sequence %s: %s", sequence.name, error)
            result.errors.append(f"{sequence.name}: {error}")
    dispatch_queued(engine, settings, result, transport)
    return result


# --- due steps ----------------------------------------------------------------------------------


def advance_due(
    engine: Engine, settings: Settings, sequence: Sequence, now: datetime, quiet: QuietHours, result: TickResult
) -> None:
    with session_scope(engine) as session:
        due = list(
            session.scalars(
                select(E.id)
                .where(E.sequence == sequence.name, E.status == "active", E.next_due_at <= now)
                .order_by(E.next_due_at, E.id)
                .limit(DUE_PER_TICK)
            )
        )
    if not due:
        return
    campaigns = ensure_step_campaigns(engine, settings, sequence)
    for enrollment_id in due:
        with session_scope(engine) as session:
            _advance_one(session, settings, sequence, campaigns, enrollment_id, now, quiet, result)


def facts_for(session: Session, sequence: Sequence, campaigns: dict[int, int], subscriber: models.Subscriber) -> Facts:
    """What the plan needs to know of one reader, read now. Opens and clicks are human only:
    a click counts when tracking did not doubt it, or when the reader confirmed it."""
    L = models.Lead
    lead = session.execute(select(L.status, L.score).where(L.subscriber_id == subscriber.id)).first()
    suppressed = session.scalar(select(exists().where(models.Suppression.email == subscriber.email)))
    tags = frozenset(
        session.scalars(select(models.SubscriberTag.tag).where(models.SubscriberTag.subscriber_id == subscriber.id))
    )
    step_of = {campaign_id: index for index, campaign_id in campaigns.items()}
    undoubted_click = and_(EV.type == "click", EV.data["doubt"].as_string().is_(None))
    rows = session.execute(
        select(EV.campaign_id, EV.type)
        .distinct()
        .where(
            EV.subscriber_id == subscriber.id,
            EV.campaign_id.in_(list(step_of)),
            EV.is_machine.is_(False),
            or_(EV.type == "open", EV.type == "cta_confirm", undoubted_click),
        )
    ).all()
    seen = [(step_of[c], kind) for c, kind in rows if c is not None]  # always: campaign_id.in_ above
    clicked = frozenset(step for step, kind in seen if kind in ("click", "cta_confirm"))
    opened = frozenset(step for step, kind in seen if kind == "open") | clicked  # a click implies an open
    return Facts(
        subscriber_status=subscriber.status,
        suppressed=bool(suppressed),
        lead_status=lead[0] if lead else None,
        score=float(lead[1]) if lead else 0.0,
        tags=tags,
        opened=opened,
        clicked=clicked,
    )


def _advance_one(
    session: Session,
    settings: Settings,
    sequence: Sequence,
    campaigns: dict[int, int],
    enrollment_id: int,
    now: datetime,
    quiet: QuietHours,
    result: TickResult,
) -> None:
    enrollment = session.get(E, enrollment_id)
    if (
        enrollment is None
        or enrollment.status != "active"
        or enrollment.next_due_at is None
        or enrollment.next_due_at > now
    ):
        return  # another scheduler got here first
    index = enrollment.next_step
    at_step = and_(E.id == enrollment.id, E.status == "active", E.next_step == index)
    if index >= len(sequence.steps):  # the file lost steps since: nothing left to send
        session.execute(update(E).where(at_step).values(status="completed", next_due_at=None, updated_at=now))
        result.completed += 1
        return
    subscriber = session.get(S, enrollment.subscriber_id)
    assert subscriber is not None  # the foreign key cascades
    tz = zone(subscriber.timezone, settings.zone)
    decision = decide(
        sequence, index, enrollment.next_due_at, facts_for(session, sequence, campaigns, subscriber), now, tz, quiet
    )
    if decision.action == "exit":
        if rows_changed(
            session,
            (
                update(E)
                .where(at_step)
                .values(status="exited", exit_reason=decision.reason, next_due_at=None, updated_at=now)
            ),
        ):
            result.exit(decision.reason or "exit")
        return
    if decision.action == "wait":
        result.waiting += 1
        return
    if decision.action == "defer":
        if decision.move:
            session.execute(update(E).where(at_step).values(next_due_at=decision.until, updated_at=now))
        result.deferred += 1
        return
    campaign_id = campaigns[index]
    status = session.scalar(select(C.status).where(C.id == campaign_id))
    if decision.action == "send" and status == "paused":
        result.held += 1  # an operator paused this step: it waits for them
        return
    send = decision.action == "send" and status != "cancelled"
    nxt, next_due = following(sequence, index, now, tz, quiet)
    values: dict[str, object] = {
        "next_step": nxt,
        "next_due_at": next_due,
        "updated_at": now,
        "status": "active" if next_due is not None else "completed",
    }
    if send:
        values["last_sent_at"] = now
    if not rows_changed(session, (update(E).where(at_step).values(**values))):
        return  # another scheduler moved it on in the meantime
    if send:
        _queue(session, campaign_id, subscriber.id, now)
        result.queued += 1
    else:
        result.skipped += 1
    if next_due is None:
        result.completed += 1


def _queue(session: Session, campaign_id: int, subscriber_id: int, now: datetime) -> None:
    """The ledger row; its unique (campaign, subscriber) makes a second insert a no-op."""
    session.execute(
        upsert_insert(session)(D)
        .values(campaign_id=campaign_id, subscriber_id=subscriber_id, status="queued", attempts=0, created_at=now)
        .on_conflict_do_nothing(index_elements=[D.campaign_id, D.subscriber_id])
    )
    session.execute(
        update(C)
        .where(C.id == campaign_id, C.status.in_(RUNNABLE))
        .values(status="sending", status_reason=None, started_at=func.coalesce(C.started_at, now))
    )


# --- sending ------------------------------------------------------------------------------------


def dispatch_queued(engine: Engine, settings: Settings, result: TickResult, transport: Transport | None = None) -> None:
    """Send what is queued (or stuck in flight) in every nurture step campaign."""
    with session_scope(engine) as session:
        pending = exists().where(D.campaign_id == C.id, D.status.in_(("queued", "in_flight")))
        ids = list(
            session.scalars(select(C.id).where(C.kind == "nurture", C.status.in_(RUNNABLE), pending).order_by(C.id))
        )
        if ids:  # a worker may have closed a campaign while we queued: open it again
            session.execute(update(C).where(C.id.in_(ids), C.status != "sending").values(status="sending"))
    if not ids:
        return
    own = transport is None
    transport = transport or make_transport(settings)
    throttle = make_throttle(engine, settings)
    try:
        for campaign_id in ids:
            try:
                outcome = dispatch_campaign(engine, settings, campaign_id, transport, throttle=throttle)
            except Exception as error:  # noqa: BLE001 - rows stay in flight; their lease decides
                log.exception("nurture campaign %s: sending stopped", campaign_id)
                result.errors.append(f"campaign {campaign_id}: sending stopped: {error}")
                continue
            finish_if_done(engine, campaign_id)
            result.sent += outcome.sent
            result.failed += outcome.failed
            result.suppressed += outcome.suppressed
            result.ambiguous += outcome.ambiguous
            if outcome.paused_reason:
                result.errors.append(f"campaign {campaign_id}: paused: {outcome.paused_reason}")
    finally:
        if own:
            transport.close()


__all__ = [
    "TickResult",
    "nurture_tick",
    "enroll",
    "remove",
    "enroll_new_leads",
    "fire_exits",
    "advance_due",
    "dispatch_queued",
    "facts_for",
]
