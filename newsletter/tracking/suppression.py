"""Suppress addresses the provider told us about: bounces, complaints, unsubscribes.

Set-based, for a whole webhook batch at once: one read of the subscribers concerned, one
status update per new status, one multi-row suppression insert (``audiences.add_suppressions``,
the list's one writer: the first reason an address was suppressed for is kept), one update of
their queued deliveries.
The ledger build and the dispatcher already leave out anyone not ``active`` or on the
suppression list, so a suppressed address is out of every later send and of the rest of a
running one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, cast

from sqlalchemy import Connection, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from newsletter.audiences import add_suppressions
from newsletter.db.models import Delivery, Subscriber
from newsletter.emailaddr import trusted_email

#: Suppression reason → the subscriber's new status.
STATUS_FOR_REASON = {
    "bounced": "bounced",
    "invalid": "bounced",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
}
#: When one batch says two things about one address, the stronger wins.
_PRIORITY = {"complained": 0, "bounced": 1, "invalid": 2, "unsubscribed": 3}
#: Statuses the provider may move: the others already say why the address is not mailed.
_MOVABLE = ("active", "pending")


@dataclass(frozen=True)
class SuppressionRequest:
    reason: str  # bounced | invalid | complained | unsubscribed
    subscriber_id: int | None = None
    email: str | None = None  # used when the event maps to no subscriber we know by id
    detail: str | None = None


@dataclass(frozen=True)
class SuppressionOutcome:
    statuses_changed: int
    suppressions_added: int
    deliveries_suppressed: int


def _normal(email: str | None) -> str | None:
    text = trusted_email(email or "")
    return text if "@" in text and len(text) <= 320 else None


_Item = TypeVar("_Item")


def _chunks(items: list[_Item], size: int = 5000) -> Iterator[list[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_SUBSCRIBERS = cast(Table, Subscriber.__table__)
_DELIVERIES = cast(Table, Delivery.__table__)
# Built once: the statements are the same for every batch (SQLAlchemy then reuses their compiled
# form); building them per call, with each id coerced into a literal, cost more than running them.
_KNOWN = select(_SUBSCRIBERS.c.id, _SUBSCRIBERS.c.email, _SUBSCRIBERS.c.status).where(
    or_(
        _SUBSCRIBERS.c.id.in_(bindparam("ids", expanding=True)),
        _SUBSCRIBERS.c.email.in_(bindparam("emails", expanding=True)),
    )
)
_SET_STATUS = (
    # ``status || ''``: with bound parameters SQLite would otherwise walk the status index (every
    # active subscriber) instead of looking the ids up (bench/RESULTS.md)
    update(_SUBSCRIBERS)
    .where(_SUBSCRIBERS.c.id.in_(bindparam("ids", expanding=True)), _SUBSCRIBERS.c.status.concat("").in_(_MOVABLE))
    .values(status=bindparam("status"), status_changed_at=bindparam("now"), updated_at=bindparam("now"))
)
_SUPPRESS_QUEUED = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.subscriber_id.in_(bindparam("ids", expanding=True)), _DELIVERIES.c.status == "queued")
    .values(status="suppressed", error="suppressed: provider event", updated_at=bindparam("now"))
)


def suppress(
    session: Session | Connection, requests: Iterable[SuppressionRequest], *, now: datetime, source: str = "sendgrid"
) -> SuppressionOutcome:
    """Apply the requests; safe to repeat (a second pass finds nothing to change)."""
    requests = [r for r in requests if r.reason in STATUS_FOR_REASON]
    if not requests:
        return SuppressionOutcome(0, 0, 0)
    db = session.connection() if isinstance(session, Session) else session
    ids = sorted({r.subscriber_id for r in requests if r.subscriber_id is not None})
    emails = sorted({e for r in requests if r.subscriber_id is None and (e := _normal(r.email))})
    known: dict[int, tuple[str, str]] = {}  # id -> (email, status)
    by_email: dict[str, int] = {}
    for id_chunk, email_chunk in _paired_chunks(ids, emails):
        for sid, email, status in db.execute(_KNOWN, {"ids": id_chunk, "emails": email_chunk}):
            known[sid] = (email, status)
            by_email[email] = sid

    chosen: dict[str, tuple[SuppressionRequest, int | None]] = {}  # email -> strongest request
    for r in requests:
        sid = r.subscriber_id if r.subscriber_id in known else by_email.get(_normal(r.email) or "")
        email = known[sid][0] if sid is not None else _normal(r.email)
        if email is None or (sid is not None and known[sid][1] == "erased"):
            continue  # nothing to suppress by, or nothing personal left to act on
        current = chosen.get(email)
        if current is None or _PRIORITY[r.reason] < _PRIORITY[current[0].reason]:
            chosen[email] = (r, sid)
    if not chosen:
        return SuppressionOutcome(0, 0, 0)

    changed = 0
    by_status: dict[str, list[int]] = {}
    for r, sid in chosen.values():
        if sid is not None:
            by_status.setdefault(STATUS_FOR_REASON[r.reason], []).append(sid)
    for status, sids in by_status.items():
        for chunk in _chunks(sids):
            changed += db.execute(_SET_STATUS, {"ids": chunk, "status": status, "now": now}).rowcount or 0

    rows = [
        {
            "email": email,
            "reason": r.reason,
            "source": source,
            "detail": (r.detail or None) and r.detail[:2000],
            "created_at": now,
        }
        for email, (r, _) in sorted(chosen.items())
    ]
    added = add_suppressions(db, rows)

    suppressed = 0
    affected = sorted({sid for _, sid in chosen.values() if sid is not None})
    for chunk in _chunks(affected):
        suppressed += db.execute(_SUPPRESS_QUEUED, {"ids": chunk, "now": now}).rowcount or 0
    return SuppressionOutcome(changed, added, suppressed)


def _paired_chunks(ids: list[int], emails: list[str], size: int = 5000) -> Iterator[tuple[list[int], list[str]]]:
    id_chunks: list[list[int]] = list(_chunks(ids, size)) or [[]]
    email_chunks: list[list[str]] = list(_chunks(emails, size)) or [[]]
    for i in range(max(len(id_chunks), len(email_chunks))):
        a = id_chunks[i] if i < len(id_chunks) else []
        b = email_chunks[i] if i < len(email_chunks) else []
        if a or b:
            yield a, b
