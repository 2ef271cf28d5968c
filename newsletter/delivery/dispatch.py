"""The send loop: claim a batch from the ledger, send it, record the answer, repeat.

Exactly once, or flagged. A batch is marked ``in_flight`` (with a lease) in its own committed
transaction *before* the request, and ``sent``/``failed`` after the answer. A worker that dies
in between leaves rows ``in_flight``; when their lease runs out they become ``ambiguous``
(:func:`expire_leases`) and are never resent without an operator's word. A timeout after the
request left is ambiguous for the same reason: the provider may have accepted it.

This module knows the ledger and transports, not templates or the web: the caller passes
``make_recipient`` to turn a ledger row into a personalised :class:`Recipient`.
"""

from __future__ import annotations

import logging
import random
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, exists, select, update
from sqlalchemy.orm import Session

from newsletter.db import models, session_scope
from newsletter.db.models import utcnow
from newsletter.delivery.message import BatchOutcome, CampaignMessage, Recipient, Transport, TransportError
from newsletter.delivery.throttle import Throttle

log = logging.getLogger(__name__)

D = models.Delivery
S = models.Subscriber


@dataclass(frozen=True)
class LedgerRow:
    delivery_id: int
    email: str
    first_name: str | None
    last_name: str | None


@dataclass
class DispatchResult:
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    ambiguous: int = 0
    batches: int = 0
    paused_reason: str | None = None
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter, for answers that say "try again"."""

    max_attempts: int = 5
    base_seconds: float = 0.5
    cap_seconds: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after > 0:
            return min(retry_after, self.cap_seconds * 5)
        return random.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** attempt))


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


def expire_leases(session: Session, campaign_id: int, now: datetime | None = None) -> int:
    """In-flight rows whose lease ran out belong to a dead worker: flag them ambiguous."""
    now = now or utcnow()
    result = session.execute(
        update(D)
        .where(D.campaign_id == campaign_id, D.status == "in_flight", D.lease_until < now)
        .values(status="ambiguous", error="worker lease expired before the answer was recorded", updated_at=now)
    )
    return result.rowcount or 0


def claim_batch(engine: Engine, campaign_id: int, size: int, worker_id: str, lease_seconds: float,
                after_id: int = 0) -> list[int]:
    """Move up to ``size`` queued rows to in_flight under our name; committed before sending.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim side by side.
    SQLite has one writer at a time, so the UPDATE itself serialises claimers.
    ``after_id`` starts the index scan past rows this worker already moved on from: every
    claimed row leaves a dead index entry behind until vacuum, and scanning from the start each
    time makes a million-row send quadratic.
    """
    now = utcnow()
    batch_key = uuid.uuid4().hex
    with session_scope(engine) as session:
        candidates = (select(D.id).where(D.campaign_id == campaign_id, D.status == "queued", D.id > after_id)
                      .order_by(D.id).limit(size))
        if engine.dialect.name == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        result = session.execute(
            update(D)
            .where(D.id.in_(candidates.scalar_subquery()))
            .values(status="in_flight", claimed_by=worker_id, batch_key=batch_key, attempts=D.attempts + 1,
                    lease_until=now + timedelta(seconds=lease_seconds), updated_at=now)
            .returning(D.id)
            .execution_options(synchronize_session=False)  # no ORM objects to keep in step
        )
        return sorted(result.scalars().all())


def load_batch(session: Session, delivery_ids: Sequence[int]) -> tuple[list[LedgerRow], list[int]]:
    """Rows still sendable, and the ids to suppress (unsubscribed or bounced since the ledger was built)."""
    suppressed = exists().where(models.Suppression.email == S.email)
    rows = session.execute(
        select(D.id, S.email, S.first_name, S.last_name, and_(S.status == "active", ~suppressed))
        .join(S, S.id == D.subscriber_id)
        .where(D.id.in_(delivery_ids))
        .order_by(D.id)
    ).all()
    sendable = [LedgerRow(r[0], r[1], r[2], r[3]) for r in rows if r[4]]
    blocked = [r[0] for r in rows if not r[4]]
    return sendable, blocked


def _mark(session: Session, ids: Sequence[int], **values: object) -> None:
    if ids:
        session.execute(update(D).where(D.id.in_(list(ids))).values(updated_at=utcnow(), lease_until=None, **values)
                        .execution_options(synchronize_session=False))


def record_outcome(engine: Engine, outcome: BatchOutcome) -> None:
    """Write sent and failed rows; one statement per distinct message id (usually one per batch)."""
    now = utcnow()
    with session_scope(engine) as session:
        by_message: dict[str | None, list[int]] = {}
        for delivery_id, message_id in outcome.sent.items():
            by_message.setdefault(message_id, []).append(delivery_id)
        if len(by_message) > 1:
            session.execute(update(D), [
                {"id": d, "status": "sent", "message_id": m, "sent_at": now, "updated_at": now, "lease_until": None, "error": None}
                for d, m in outcome.sent.items()
            ])
        else:
            for message_id, ids in by_message.items():
                _mark(session, ids, status="sent", message_id=message_id, sent_at=now, error=None)
        for delivery_id, reason in outcome.failed.items():
            _mark(session, [delivery_id], status="failed", error=reason[:2000])


class BatchSender:
    """Sends one claimed batch through a transport, handling each kind of answer."""

    def __init__(self, transport: Transport, message: CampaignMessage, retry: RetryPolicy,
                 sleep: Callable[[float], None] = time.sleep, throttle: Throttle | None = None,
                 before_retry: Callable[[], None] | None = None) -> None:
        self.transport = transport
        self.message = message
        self.retry = retry
        self.sleep = sleep
        self.throttle = throttle
        self.before_retry = before_retry or (lambda: None)

    def send(self, recipients: list[Recipient]) -> tuple[BatchOutcome, list[int], TransportError | None]:
        """Returns (outcome, ambiguous ids, pausing error or None)."""
        outcome = BatchOutcome()
        ambiguous: list[int] = []
        pause = self._send_part(recipients, outcome, ambiguous)
        return outcome, ambiguous, pause

    def _send_part(self, recipients: list[Recipient], outcome: BatchOutcome, ambiguous: list[int]) -> TransportError | None:
        if not recipients:
            return None
        attempt = 0
        while True:
            try:
                answer = self.transport.send_batch(self.message, recipients)
            except TransportError as error:
                if error.pause:
                    return error
                if error.ambiguous:
                    ambiguous.extend(r.delivery_id for r in recipients)
                    return None
                bad = getattr(error, "bad_indexes", None)
                if bad:
                    return self._drop_bad(recipients, bad, error, outcome, ambiguous)
                if error.status in (400, 413):
                    return self._split(recipients, error, outcome, ambiguous)
                if error.status == 429 and self.throttle:
                    self.throttle.slow_down()
                if error.retryable and attempt + 1 < self.retry.max_attempts:
                    delay = self.retry.delay(attempt, error.retry_after)
                    log.warning("batch of %d: %s; retrying in %.1fs", len(recipients), error.message, delay)
                    self.sleep(delay)
                    self.before_retry()
                    attempt += 1
                    continue
                for r in recipients:
                    outcome.failed[r.delivery_id] = f"{error.message} (after {attempt + 1} attempt(s))"
                return None
            outcome.sent.update(answer.sent)
            outcome.failed.update(answer.failed)
            if self.throttle:
                self.throttle.recover()
            return None

    def _drop_bad(self, recipients: list[Recipient], bad: set[int], error: TransportError,
                  outcome: BatchOutcome, ambiguous: list[int]) -> TransportError | None:
        messages = getattr(error, "messages", {}) or {}
        for index in sorted(bad):
            if 0 <= index < len(recipients):
                outcome.failed[recipients[index].delivery_id] = str(messages.get(index, error.message))
        rest = [r for i, r in enumerate(recipients) if i not in bad]
        return self._send_part(rest, outcome, ambiguous)

    def _split(self, recipients: list[Recipient], error: TransportError,
               outcome: BatchOutcome, ambiguous: list[int]) -> TransportError | None:
        """A 400 that names nobody, or a 413: halve until the bad recipient stands alone."""
        if len(recipients) == 1:
            outcome.failed[recipients[0].delivery_id] = error.message
            return None
        middle = len(recipients) // 2
        pause = self._send_part(recipients[:middle], outcome, ambiguous)
        return pause or self._send_part(recipients[middle:], outcome, ambiguous)


def renew_lease(engine: Engine, ids: Sequence[int], worker_id: str, lease_seconds: float) -> None:
    """Still working on it (waiting to retry): push the lease out so nobody calls it dead."""
    with session_scope(engine) as session:
        session.execute(update(D).where(D.id.in_(list(ids)), D.status == "in_flight", D.claimed_by == worker_id)
                        .values(lease_until=utcnow() + timedelta(seconds=lease_seconds)))


def campaign_is_runnable(engine: Engine, campaign_id: int) -> bool:
    with session_scope(engine) as session:
        status = session.scalar(select(models.Campaign.status).where(models.Campaign.id == campaign_id))
    return status in ("sending",)


def dispatch(
    engine: Engine,
    campaign_id: int,
    transport: Transport,
    message: CampaignMessage,
    make_recipient: Callable[[LedgerRow], Recipient],
    *,
    batch_size: int = 1000,
    worker_id: str | None = None,
    lease_seconds: float = 300.0,
    retry: RetryPolicy | None = None,
    on_batch: Callable[[DispatchResult], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    throttle: Throttle | None = None,
) -> DispatchResult:
    """Send every queued row of the campaign; stops early if the campaign is paused or cancelled."""
    worker_id = worker_id or default_worker_id()
    result = DispatchResult()
    with session_scope(engine) as session:
        expire_leases(session, campaign_id)
    cursor = 0
    while campaign_is_runnable(engine, campaign_id):
        size = throttle.allowance(batch_size, lambda: not campaign_is_runnable(engine, campaign_id)) if throttle else batch_size
        if size <= 0:
            break
        ids = claim_batch(engine, campaign_id, size, worker_id, lease_seconds, after_id=cursor)
        if not ids and cursor:
            cursor = 0  # rows re-queued behind us (a pause, a retry): one scan from the start
            continue
        if not ids:
            break
        cursor = ids[-1]
        result.batches += 1
        with session_scope(engine) as session:
            rows, blocked = load_batch(session, ids)
            _mark(session, blocked, status="suppressed", error="suppressed at dispatch")
        result.suppressed += len(blocked)
        recipients = [make_recipient(row) for row in rows]
        if throttle:
            throttle.pace(len(recipients))
        sender = BatchSender(transport, message, retry or RetryPolicy(), sleep, throttle,
                             before_retry=lambda: renew_lease(engine, ids, worker_id, lease_seconds))
        outcome, ambiguous, pause = sender.send(recipients)
        record_outcome(engine, outcome)
        result.sent += len(outcome.sent)
        result.failed += len(outcome.failed)
        settled = set(outcome.sent) | set(outcome.failed)
        with session_scope(engine) as session:
            _mark(session, ambiguous, status="ambiguous", error="no answer from the provider; it may have been sent")
            if pause is not None:
                back = [r.delivery_id for r in recipients if r.delivery_id not in settled and r.delivery_id not in ambiguous]
                _mark(session, back, status="queued", claimed_by=None, batch_key=None)
                session.execute(update(models.Campaign).where(models.Campaign.id == campaign_id)
                                .values(status="paused", status_reason=pause.message))
        result.ambiguous += len(ambiguous)
        if on_batch:
            on_batch(result)
        if pause is not None:
            result.paused_reason = pause.message
            break
    return result
