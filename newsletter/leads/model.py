"""Leads: who asked to connect, where they stand, and every change with who made it and when.

A lead is created by a person's click on a campaign's call to action (``tracking`` calls this
room's ``warm_lead_from_click`` in the same transaction as the click) or by a signup that asks
for a consultation (:func:`create_signup_lead`); both statements live in ``leads/writes.py``. Staff move it along with :func:`update_status`; each move is a
row in ``lead_status_changes``.

Statuses and the moves allowed between them (anything else is refused, naming the moves that
are allowed, so a typo or a slip never rewrites a lead's story):

=============  =====================================================================
from           to
=============  =====================================================================
new            contacted, booked (they booked on their own), not_a_fit, lost
contacted      booked, not_a_fit, lost
booked         client, contacted (missed or rescheduled), not_a_fit, lost
not_a_fit      contacted (reopened: they came back)
lost           contacted (reopened)
client         nothing: final
=============  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from newsletter.audiences import InvalidEmail, normalise_email
from newsletter.db import rows_changed
from newsletter.db.models import LEAD_STATUSES, Lead, LeadStatusChange, Subscriber, utcnow
from newsletter.errors import NotFound, UserError
from newsletter.leads.writes import insert_signup_lead

STATUSES: tuple[str, ...] = LEAD_STATUSES  # new, contacted, booked, client, not_a_fit, lost
#: Statuses of a lead still in the pipeline (the digest's "warm" list looks at the first two).
OPEN_STATUSES = ("new", "contacted", "booked")
CLOSED_STATUSES = ("client", "not_a_fit", "lost")
LABELS = {
    "new": "new",
    "contacted": "contacted",
    "booked": "consultation booked",
    "client": "became a client",
    "not_a_fit": "not a fit",
    "lost": "lost",
}
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("contacted", "booked", "not_a_fit", "lost"),
    "contacted": ("booked", "not_a_fit", "lost"),
    "booked": ("client", "contacted", "not_a_fit", "lost"),
    "client": (),
    "not_a_fit": ("contacted",),
    "lost": ("contacted",),
}
SIGNUP_SOURCES = ("signup", "staff")
#: ``changed_by`` values starting with this are the product's own changes, not a person's.
SYSTEM_PREFIX = "system:"
NOTE_MAX = 2000


@dataclass(frozen=True)
class StatusChange:
    lead_id: int
    from_status: str | None
    to_status: str
    changed_by: str
    changed_at: datetime
    note: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "lead_id": self.lead_id,
            "from_status": self.from_status,
            "to_status": self.to_status,
            "changed_by": self.changed_by,
            "changed_at": self.changed_at.isoformat(),
            "note": self.note,
        }


@dataclass(frozen=True)
class SignupLead:
    lead_id: int
    created: bool  # False: the subscriber already was a lead (nothing changed)
    status: str


def _or(words: tuple[str, ...]) -> str:
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else "".join(words)


def check_status(status: str, where: str = "--status") -> str:
    """The status as stored; unknown ones are a :class:`UserError` listing the known ones."""
    value = (status or "").strip().lower().replace("-", "_").replace(" ", "_")
    if value not in STATUSES:
        raise UserError(f"unknown lead status {status!r}; use one of {', '.join(STATUSES)}", where=where)
    return value


def _check_person(by: str) -> str:
    who = (by or "").strip()
    if not who:
        raise UserError("say who made the change", where="--by")
    if len(who) > 200:
        raise UserError("at most 200 characters", where="--by")
    return who


def _check_note(note: str | None) -> str | None:
    text = (note or "").strip()
    if len(text) > NOTE_MAX:
        raise UserError(f"at most {NOTE_MAX} characters", where="--note")
    return text or None


def get_lead(session: Session, lead_id: int) -> Lead:
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFound(f"no lead {lead_id}", where="lead id")
    return lead


def update_status(
    session: Session, lead_id: int, status: str, *, by: str, note: str | None = None, now: datetime | None = None
) -> StatusChange:
    """Move a lead to ``status`` and record who did it, when, and why (``note``).

    Refuses unknown statuses, a move the pipeline does not allow (naming the ones it does) and
    a move to the status the lead already has. The update is conditional on the status read, so
    two people changing the same lead at once cannot both succeed on a stale view.
    """
    to_status = check_status(status)
    who = _check_person(by)
    text = _check_note(note)
    now = now or utcnow()
    lead = get_lead(session, lead_id)
    current = lead.status
    if to_status == current:
        raise UserError(f"lead {lead_id} is already {to_status!r}", where="--status")
    allowed = TRANSITIONS.get(current, ())
    if to_status not in allowed:
        options = f"it can go to {_or(allowed)}" if allowed else "that is final"
        raise UserError(
            f"lead {lead_id} is {current!r} ({LABELS[current]}): {options}, not {to_status!r}", where="--status"
        )
    values: dict[str, object] = {"status": to_status, "status_changed_at": now, "updated_at": now}
    if text is not None:
        values["note"] = text
    moved = rows_changed(
        session,
        (
            update(Lead)
            .where(Lead.id == lead_id, Lead.status == current)
            .values(**values)
            .execution_options(synchronize_session=False)
        ),
    )
    if moved != 1:
        raise UserError(
            f"lead {lead_id} was changed by someone else meanwhile; look again (newsletter leads show {lead_id})",
            where="--status",
        )
    session.execute(
        insert(LeadStatusChange).values(
            lead_id=lead_id, from_status=current, to_status=to_status, changed_by=who, note=text, changed_at=now
        )
    )
    session.expire(lead)
    return StatusChange(lead_id, current, to_status, who, now, text)


def history(session: Session, lead_id: int) -> list[StatusChange]:
    """Every status the lead has had, oldest first (the first row is its creation)."""
    get_lead(session, lead_id)
    rows = session.scalars(
        select(LeadStatusChange)
        .where(LeadStatusChange.lead_id == lead_id)
        .order_by(LeadStatusChange.changed_at, LeadStatusChange.id)
    )
    return [StatusChange(r.lead_id, r.from_status, r.to_status, r.changed_by, r.changed_at, r.note) for r in rows]


def _find_subscriber(session: Session, email: str) -> Subscriber:
    try:
        address = normalise_email(email)
    except InvalidEmail as error:
        raise UserError(f"not an email address: {error}", where="EMAIL") from None
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None:
        raise NotFound(
            f"no subscriber {address}: a lead belongs to a subscriber; import or sign them up first", where="EMAIL"
        )
    if subscriber.status == "erased":
        raise UserError(
            f"subscriber {subscriber.id} was erased: nothing personal is kept to follow up on", where="EMAIL"
        )
    return subscriber


def create_signup_lead(
    session: Session,
    email: str,
    *,
    source: str = "signup",
    by: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> SignupLead:
    """A lead for a subscriber who asked for a consultation when signing up (``signup``) or
    whom staff add by hand (``staff``). The subscriber must exist.

    One lead per subscriber: if they already are one (say they pressed the CTA last week), the
    lead is returned unchanged with ``created=False``. The insert is ``ON CONFLICT DO NOTHING``,
    so a double-submitted form makes one lead. The creation is the lead's first history row,
    by ``by`` or ``system:<source>``.
    """
    if source not in SIGNUP_SOURCES:
        raise UserError(f"unknown source {source!r}; use {_or(SIGNUP_SOURCES)}", where="--source")
    text = _check_note(note)
    who = _check_person(by) if by is not None else f"{SYSTEM_PREFIX}{source}"
    now = now or utcnow()
    subscriber = _find_subscriber(session, email)
    lead_id = insert_signup_lead(session, subscriber.id, source=source, note=text, by=who, now=now)
    if lead_id is None:
        existing = session.execute(select(Lead.id, Lead.status).where(Lead.subscriber_id == subscriber.id)).one()
        return SignupLead(int(existing.id), False, existing.status)
    return SignupLead(lead_id, True, "new")
