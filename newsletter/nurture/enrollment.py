"""Who enters a nurture sequence and who leaves it: the tick's entry and exit steps, and the
staff's ``enroll`` / ``remove`` by hand.

Kept apart from :mod:`newsletter.nurture.engine` (the due-step advance and the send) because
entry and exit only touch ``nurture_enrollments`` and withdraw queued rows; they never decide
or send a step.

* Enrollment is ``INSERT … ON CONFLICT DO NOTHING`` on (sequence, subscriber): a reader enters
  a sequence once, ever, whichever scheduler gets there first.
* Exits are set-based updates on every tick, not only when a step is due, and they take the
  reader's still-queued nurture rows out of the ledger (``suppressed``): an exit stops at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Engine, and_, exists, func, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import models, rows_changed, session_scope
from newsletter.db.dialect import upsert_insert
from newsletter.errors import NotFound, UserError
from newsletter.nurture.clock import QuietHours, zone
from newsletter.nurture.plan import first_due
from newsletter.nurture.sequence_reader import load_sequence
from newsletter.nurture.sequences import Sequence

if TYPE_CHECKING:  # the engine imports this module to run its tick
    from newsletter.nurture.engine import TickResult

E = models.NurtureEnrollment
S = models.Subscriber
D = models.Delivery
EV = models.Event
C = models.Campaign


# --- entry ------------------------------------------------------------------------------------


def _entry_campaigns(session: Session, sequence: Sequence) -> list[int]:
    """The campaigns whose leads may enter: few, so the events are then read by their index
    (campaign, type, is_machine) instead of scanning every open and click."""
    query = select(C.id)
    if sequence.entry.campaign_kind:
        query = query.where(C.kind == sequence.entry.campaign_kind)
    if sequence.entry.article:
        query = query.join(models.Article, models.Article.id == C.article_id).where(
            models.Article.slug == sequence.entry.article
        )
    return list(session.scalars(query))


def enroll_new_leads(
    engine: Engine, settings: Settings, sequence: Sequence, now: datetime, quiet: QuietHours, result: TickResult
) -> int:
    """Enroll every reader whose recent *human* lead event matches the sequence's entry."""
    L = models.Lead
    within = sequence.entry.within
    since = now - timedelta(days=within.days, seconds=within.seconds)
    added = 0
    with session_scope(engine) as session:
        campaigns = _entry_campaigns(session, sequence)
        if not campaigns:
            return 0
        query = (
            select(EV.subscriber_id, func.max(L.id), func.max(S.timezone))
            .join(L, L.subscriber_id == EV.subscriber_id)  # a lead taken back (a scanner's burst) enrolls no one
            .join(S, S.id == EV.subscriber_id)
            .where(
                EV.campaign_id.in_(campaigns),
                EV.type == "lead",
                EV.is_machine.is_(False),
                EV.occurred_at > since,
                EV.occurred_at <= now,
                models.sendable(),
                ~exists().where(E.sequence == sequence.name, E.subscriber_id == EV.subscriber_id),
            )
            .group_by(EV.subscriber_id)
        )
        if sequence.exit_lead_statuses:
            query = query.where(L.status.not_in(sequence.exit_lead_statuses))
        for subscriber_id, lead_id, tz_name in session.execute(query).all():
            assert subscriber_id is not None  # the inner joins on it
            added += _add_enrollment(session, settings, sequence, subscriber_id, lead_id, tz_name, now, quiet)
    result.enrolled += added
    return added


def _add_enrollment(
    session: Session,
    settings: Settings,
    sequence: Sequence,
    subscriber_id: int,
    lead_id: int | None,
    tz_name: str | None,
    now: datetime,
    quiet: QuietHours,
) -> int:
    due = first_due(sequence, now, zone(tz_name, settings.zone), quiet)
    statement = (
        upsert_insert(session)(E)
        .values(
            sequence=sequence.name,
            subscriber_id=subscriber_id,
            lead_id=lead_id,
            status="active",
            next_step=0,
            next_due_at=due,
            enrolled_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[E.sequence, E.subscriber_id])
        .returning(E.id)
    )
    return 1 if session.execute(statement).first() is not None else 0


def enroll(engine: Engine, settings: Settings, sequence_name: str, email: str, now: datetime) -> tuple[int, bool]:
    """Put one subscriber into a sequence by hand (staff, tests). Returns (enrollment id,
    created); a reader already enrolled, even one who left, is not enrolled again."""
    sequence = load_sequence(sequence_name, settings.audiences_dir, settings.templates_dir)
    quiet = settings.quiet
    with session_scope(engine) as session:
        subscriber = _subscriber(session, email)
        sendable = session.scalar(select(models.sendable()).where(S.id == subscriber.id))
        if not sendable:
            raise UserError(
                f"{subscriber.email} is {subscriber.status} or suppressed: nothing may be sent to them", where=email
            )
        lead_id = session.scalar(select(models.Lead.id).where(models.Lead.subscriber_id == subscriber.id))
        created = _add_enrollment(session, settings, sequence, subscriber.id, lead_id, subscriber.timezone, now, quiet)
        enrollment_id = session.scalar(
            select(E.id).where(E.sequence == sequence.name, E.subscriber_id == subscriber.id)
        )
    assert enrollment_id is not None  # just inserted, or there before
    return int(enrollment_id), bool(created)


def _subscriber(session: Session, email: str) -> models.Subscriber:
    from newsletter.audiences import normalise_email, trusted_email

    try:
        address = normalise_email(email)
    except Exception:  # noqa: BLE001 - any invalid address is simply not found
        address = trusted_email(email)
    subscriber = session.scalar(select(S).where(S.email == address))
    if subscriber is None:
        raise NotFound(f"no subscriber {email!r}", where="email")
    return subscriber


# --- exits ------------------------------------------------------------------------------------


def fire_exits(engine: Engine, sequence: Sequence, now: datetime, result: TickResult) -> None:
    """Every active enrollment whose exit rule holds leaves now, whether or not a step is due."""
    L = models.Lead
    mine = and_(E.sequence == sequence.name, E.status == "active")
    same = E.subscriber_id == S.id
    rules: list[tuple[str, ColumnElement[bool]]] = [
        (status, exists().where(same, S.status == status))
        for status in ("unsubscribed", "bounced", "complained", "erased", "pending")
    ]
    rules.append(("suppressed", exists().where(same, models.Suppression.email == S.email)))
    rules += [
        (f"lead_{status}", exists().where(L.subscriber_id == E.subscriber_id, L.status == status))
        for status in sequence.exit_lead_statuses
    ]
    with session_scope(engine) as session:
        for reason, condition in rules:
            count = rows_changed(
                session,
                (
                    update(E)
                    .where(mine, condition)
                    .values(status="exited", exit_reason=reason, next_due_at=None, updated_at=now)
                    .execution_options(synchronize_session=False)
                ),
            )
            result.exit(reason, count)
        _withdraw_queued(session, sequence, now)


def _withdraw_queued(session: Session, sequence: Sequence, now: datetime) -> None:
    """Queued nurture rows of readers who left the sequence are never sent."""
    left = exists().where(E.sequence == sequence.name, E.subscriber_id == D.subscriber_id, E.status == "exited")
    steps = select(C.id).where(C.kind == "nurture", C.name.in_(sequence.campaign_names))
    session.execute(
        update(D)
        .where(D.status == "queued", D.campaign_id.in_(steps.scalar_subquery()), left)
        .values(status="suppressed", error="left the nurture sequence", updated_at=now)
        .execution_options(synchronize_session=False)
    )


def remove(engine: Engine, sequence_name: str, email: str, now: datetime, *, reason: str = "removed") -> bool:
    """Take a reader out of a sequence by hand (manual exit). Returns False when they had
    already left or finished. Works for a sequence whose file is gone, too."""
    with session_scope(engine) as session:
        subscriber = _subscriber(session, email)
        enrollment = session.scalar(select(E).where(E.sequence == sequence_name, E.subscriber_id == subscriber.id))
        if enrollment is None:
            raise NotFound(f"{subscriber.email} is not in the nurture sequence {sequence_name!r}", where=email)
        changed = (
            rows_changed(
                session,
                (
                    update(E)
                    .where(E.id == enrollment.id, E.status == "active")
                    .values(status="exited", exit_reason=reason[:100], next_due_at=None, updated_at=now)
                ),
            )
            == 1
        )
        names = select(C.id).where(C.kind == "nurture", C.name.startswith(f"nurture:{sequence_name}:", autoescape=True))
        session.execute(
            update(D)
            .where(D.status == "queued", D.subscriber_id == subscriber.id, D.campaign_id.in_(names.scalar_subquery()))
            .values(status="suppressed", error="removed from the nurture sequence", updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return changed


__all__ = ["enroll", "remove", "enroll_new_leads", "fire_exits"]
