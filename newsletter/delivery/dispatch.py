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

import gc
import logging
import random
import socket
import time
import uuid
from collections import deque
from contextlib import contextmanager, nullcontext
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Engine, Integer, any_, bindparam, exists, func, insert, literal_column, null, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from newsletter.db import models, session_scope
from newsletter.db.dialect import id_in, pg_array_literal, pg_id_in
from newsletter.db.models import utcnow
from newsletter.delivery.message import BatchOutcome, CampaignMessage, Recipient, Transport, TransportError
from newsletter.delivery.mime import recipient_problem
from newsletter.delivery.throttle import Throttle

log = logging.getLogger(__name__)

D = models.Delivery
S = models.Subscriber

#: Where a unit of work goes: the engine (a pooled connection each time) or a connection the
#: dispatch holds for its whole run (see :func:`dispatch`).
Bind = Engine | Connection


class LedgerRow(NamedTuple):
    """Who one claimed row goes to. A named tuple: a thousand are made per batch on the claiming
    thread, at a third of a frozen dataclass's cost."""

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


def ids_condition(bind: Bind, column: Any, ids: Sequence[int]) -> Any:
    """``column`` is one of ``ids``: one bound parameter on PostgreSQL (see :mod:`newsletter.db.dialect`)."""
    return id_in(bind.dialect.name, column, ids)


@dataclass
class ClaimedBatch:
    """Rows moved to in_flight under our name: those still sendable, and those to suppress."""

    ids: list[int]
    rows: list[LedgerRow]
    blocked: list[int]


def claim_batch(bind: Bind, campaign_id: int, size: int, worker_id: str, lease_seconds: float,
                after_id: int = 0) -> ClaimedBatch:
    """Move up to ``size`` queued rows to in_flight under our name, committed before sending,
    and read who they go to. Nothing is claimed unless the campaign is ``sending``, checked in
    the same statement, so a pause or cancel is honoured from the next claim on.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim side by side, and
    the claim and the recipients' lookup are one statement (one round trip).
    SQLite has one writer at a time, so the UPDATE itself serialises claimers.
    ``after_id`` starts the index scan past rows this worker already moved on from: every
    claimed row leaves a dead index entry behind until vacuum, and scanning from the start each
    time makes a million-row send quadratic.
    """
    now = utcnow()
    values = {"claim_campaign": campaign_id, "claim_after": after_id, "claim_size": size, "claim_worker": worker_id,
              # Which claim took a row, nothing more: random.getrandbits, not uuid4, whose
              # os.urandom call lets go of the GIL and may wait a switch interval to get it back.
              "claim_key": f"{random.getrandbits(128):032x}",
              "claim_lease": now + timedelta(seconds=lease_seconds), "claim_now": now}
    with session_scope(bind) as session:
        if bind.dialect.name == "postgresql":
            people = _claim_with_recipients(session, values)
        else:
            claim, candidates = _claim_statement()
            claimed = session.execute(claim.where(D.id.in_(candidates.scalar_subquery())).returning(D.id, D.subscriber_id)
                                      .execution_options(synchronize_session=False), values).all()
            people = _recipients_of(session, bind, claimed)
        rows: list[LedgerRow] = []
        blocked: list[int] = []
        for delivery_id, email, first_name, last_name, sendable in people:
            if sendable:
                rows.append(LedgerRow(delivery_id, email, first_name, last_name))
            else:
                blocked.append(delivery_id)
        _mark(session, bind, blocked, status="suppressed", error="suppressed at dispatch")
    return ClaimedBatch([person[0] for person in people], rows, blocked)


#: (delivery id, email, first name, last name, may be mailed now), in delivery id order.
_Person = tuple[int, str | None, str | None, str | None, bool]


def _claim_statement() -> tuple[Any, Any]:
    """The claim's UPDATE (without its WHERE) and the SELECT of its candidates, with named
    parameters (named apart from the columns, as SQLAlchemy requires in an UPDATE): claim_campaign,
    claim_after, claim_size, claim_worker, claim_key, claim_lease, claim_now."""
    runnable = exists().where(models.Campaign.id == bindparam("claim_campaign"), models.Campaign.status == "sending")
    candidates = (select(D.id).where(D.campaign_id == bindparam("claim_campaign"), D.status == "queued",
                                     D.id > bindparam("claim_after"), runnable)
                  .order_by(D.id).limit(bindparam("claim_size", type_=Integer())))
    claim = update(D).values(status="in_flight", claimed_by=bindparam("claim_worker"), batch_key=bindparam("claim_key"),
                             attempts=D.attempts + 1, lease_until=bindparam("claim_lease", type_=models.UTCDateTime()),
                             updated_at=bindparam("claim_now", type_=models.UTCDateTime()))
    return claim, candidates


@lru_cache(maxsize=4)
def _pg_claim_sql(dialect: Any) -> tuple[str, dict[str, Any]]:
    """PostgreSQL: the claim and the recipients' lookup as one statement (a data-modifying CTE),
    compiled once, with the constants' parameter values.

    ``id = ANY(ARRAY(…))``, not ``id IN (…)``: PostgreSQL plans the IN form as a hash join over
    a sequential scan of the whole ledger (tens of ms per batch, growing with the ledger); the
    array form locks the candidates once, then probes the primary key.
    """
    claim, candidates = _claim_statement()
    chosen = D.id == any_(func.array(candidates.with_for_update(skip_locked=True).scalar_subquery()))
    claimed = claim.where(chosen).returning(D.id, D.subscriber_id).cte("claimed")
    statement = (select(claimed.c.id, S.email, S.first_name, S.last_name, func.coalesce(models.sendable(), False))
                 .select_from(claimed.outerjoin(S, S.id == claimed.c.subscriber_id))
                 .order_by(claimed.c.id))
    compiled = statement.compile(dialect=dialect)
    return str(compiled), dict(compiled.params)


def _claim_with_recipients(session: Session, values: dict[str, Any]) -> list[_Person]:
    """PostgreSQL: run :func:`_pg_claim_sql` in the session's transaction through psycopg's own
    cursor: a thousand plain tuples made in C, not SQLAlchemy result rows (the claiming thread
    is the send's busiest)."""
    conn = session.connection()
    sql, constants = _pg_claim_sql(conn.dialect)
    with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        return cursor.execute(sql, {**constants, **values}).fetchall()


def _recipients_of(session: Session, bind: Bind, claimed: Sequence[Any]) -> list[_Person]:
    """The claimed rows' recipients, by primary key (not a join, so the plan stays an index
    probe at any list size); a row whose subscriber is gone may not be mailed."""
    ordered = sorted((delivery_id, subscriber_id) for delivery_id, subscriber_id in claimed)  # plain tuples sort fast
    found = {row[0]: row for row in session.execute(
        select(S.id, S.email, S.first_name, S.last_name, models.sendable())
        .where(ids_condition(bind, S.id, [subscriber for _, subscriber in ordered]))
    )}
    people: list[_Person] = []
    for delivery_id, subscriber_id in ordered:
        person = found.get(subscriber_id)
        people.append((delivery_id, None, None, None, False) if person is None
                      else (delivery_id, person[1], person[2], person[3], bool(person[4])))
    return people


def _mark(session: Session, bind: Bind, ids: Sequence[int], **values: object) -> None:
    if ids:
        session.execute(update(D).where(ids_condition(bind, D.id, ids))
                        .values(updated_at=utcnow(), lease_until=None, **values)
                        .execution_options(synchronize_session=False))


def record_outcome(bind: Bind, campaign_id: int, outcome: BatchOutcome) -> None:
    """Write sent and failed rows, and what the provider accepted to the send log
    (:func:`_send_log_rows`), in one transaction: one statement for a batch's usual single
    message id, one row at a time only when the recipients have ids of their own.

    On PostgreSQL this commit does not wait for the WAL flush (``synchronous_commit off``): if
    the database itself crashed in the next instant, the rows would fall back to in_flight and
    then ambiguous, flagged for the operator, never resent. The claim before the request keeps
    a synchronous commit, because losing *that* could send twice.
    """
    now = utcnow()
    by_message: dict[str | None, list[int]] = {}
    for delivery_id, message_id in outcome.sent.items():
        by_message.setdefault(message_id, []).append(delivery_id)
    log = _send_log_rows(campaign_id, by_message, now, per_recipient_ids=outcome.per_recipient_ids)
    failed = [{"id": d, "error": reason[:2000], "now": now} for d, reason in outcome.failed.items()]
    with session_scope(bind) as session:
        if bind.dialect.name == "postgresql":
            _record_on_postgres(session, outcome.sent, by_message, failed, log, now)
            return
        if len(by_message) > 1:
            session.execute(update(D), [
                {"id": d, "status": "sent", "message_id": m, "sent_at": now, "updated_at": now, "lease_until": None, "error": None}
                for d, m in outcome.sent.items()
            ])
        else:
            for message_id, ids in by_message.items():
                _mark(session, bind, ids, status="sent", message_id=message_id, sent_at=now, error=None)
        for row in failed:
            _mark(session, bind, [row["id"]], status="failed", error=row["error"])
        if log:
            session.execute(insert(models.SendLog), log)


def _send_log_rows(campaign_id: int, by_message: dict[str | None, list[int]], now: datetime, *,
                   per_recipient_ids: bool = False) -> list[dict[str, Any]]:
    """The send log's rows for one answer: one per provider message id (SendGrid gives one per
    request, and a batch split after a 400 went out as several), or a single row without an id
    when each recipient got their own (the outbox: a million ids would say nothing)."""
    if not by_message:
        return []
    if per_recipient_ids:
        return [{"campaign_id": campaign_id, "message_id": None, "recorded_at": now,
                 "recipients": sum(len(ids) for ids in by_message.values())}]
    return [{"campaign_id": campaign_id, "message_id": m, "recipients": len(ids), "recorded_at": now}
            for m, ids in by_message.items()]


def _record_on_postgres(session: Session, sent: dict[int, str | None], by_message: dict[str | None, list[int]],
                        failed: list[dict[str, Any]], log: list[dict[str, Any]], now: datetime) -> None:
    """PostgreSQL: the record as statements compiled once (:func:`_pg_record_sql`), run through
    psycopg's own cursor in the session's transaction.

    The recorder runs beside the claiming thread, the send's busiest; the ORM's statement
    building and bulk insert cost it about 3 ms of Python a batch, all of it holding the GIL
    the claiming thread waits for. This way the sender's CPU per request fell by a tenth
    (alternating runs at 300,000, against the fake's CPU in the same run).
    """
    sql = _pg_record_sql(session.get_bind().dialect)
    with session.connection().connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        if len(by_message) == 1:
            ((message_id, ids),) = by_message.items()
            cursor.execute(sql["sent"], {"message_id": message_id, "now": now, "ids": pg_array_literal(ids)})
        elif by_message:
            cursor.executemany(sql["sent_one"], [{"id": d, "message_id": m, "now": now} for d, m in sent.items()])
        if failed:
            cursor.executemany(sql["failed"], failed)
        if log:
            cursor.executemany(sql["log"], log)


@lru_cache(maxsize=4)
def _pg_record_sql(dialect: Any) -> dict[str, str]:
    """The record's statements as PostgreSQL text with psycopg's named placeholders, compiled
    once from the models (the ledger's columns stay defined in one place)."""
    when = bindparam("now", type_=models.UTCDateTime())
    sent = dict(status=literal_column("'sent'"), message_id=bindparam("message_id"), sent_at=when, updated_at=when,
                lease_until=null(), error=null())
    statements = {
        "sent": update(D).where(pg_id_in(D.id)).values(**sent),
        "sent_one": update(D).where(D.id == bindparam("id")).values(**sent),
        "failed": update(D).where(D.id == bindparam("id")).values(
            status=literal_column("'failed'"), error=bindparam("error"), updated_at=when, lease_until=null()),
        "log": insert(models.SendLog).inline().values(campaign_id=bindparam("campaign_id"), message_id=bindparam("message_id"),
                                             recipients=bindparam("recipients"),
                                             recorded_at=bindparam("recorded_at", type_=models.UTCDateTime())),
    }
    return {name: str(statement.compile(dialect=dialect)) for name, statement in statements.items()}


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

    def send(self, recipients: list[Recipient], prepared: object | None = None
             ) -> tuple[BatchOutcome, list[int], TransportError | None]:
        """Returns (outcome, ambiguous ids, pausing error or None). ``prepared``: the transport's
        own request for exactly ``recipients`` (see ``Transport``), reused for every retry."""
        outcome = BatchOutcome()
        ambiguous: list[int] = []
        pause = self._send_part(recipients, outcome, ambiguous, prepared)
        return outcome, ambiguous, pause

    def _send_part(self, recipients: list[Recipient], outcome: BatchOutcome, ambiguous: list[int],
                   prepared: object | None = None) -> TransportError | None:
        if not recipients:
            return None
        attempt = 0
        while True:
            try:
                answer = (self.transport.send_batch(self.message, recipients) if prepared is None
                          else self.transport.send_batch(self.message, recipients, prepared=prepared))  # type: ignore[call-arg]
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
            outcome.per_recipient_ids = outcome.per_recipient_ids or answer.per_recipient_ids
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
        session.execute(update(D).where(ids_condition(engine, D.id, ids), D.status == "in_flight", D.claimed_by == worker_id)
                        .values(lease_until=utcnow() + timedelta(seconds=lease_seconds)))


_CAMPAIGN_STATUS = select(models.Campaign.status).where(models.Campaign.id == bindparam("campaign"))


def campaign_is_runnable(bind: Bind, campaign_id: int) -> bool:
    """Still ``sending``? Asked after every answer, before the next request goes: a plain
    connection and a statement compiled once, not a session (half the cost, on the send's path).
    On a held connection in autocommit mode (the dispatch's checker) it is one round trip."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return conn.execute(_CAMPAIGN_STATUS, {"campaign": campaign_id}).scalar() == "sending"
    try:
        return bind.execute(_CAMPAIGN_STATUS, {"campaign": campaign_id}).scalar() == "sending"
    finally:
        bind.rollback()


@dataclass
class _InFlight:
    """A claimed batch and, once submitted, the future of its request."""

    batch: ClaimedBatch
    recipients: list[Recipient]
    prepared: object | None = None  # the transport's request, made on the claiming thread
    #: Rows of the batch left out of ``recipients`` because their header cannot be written:
    #: delivery id → reason. They fail with the batch's answer; the others are sent.
    unwritable: dict[int, str] = field(default_factory=dict)
    future: Future[tuple[BatchOutcome, list[int], TransportError | None]] | None = None


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
    concurrency: int = 1,
) -> DispatchResult:
    """Send every queued row of the campaign; stops early if the campaign is paused or cancelled.

    Pipelined: up to ``concurrency`` requests are out at once, each on a sending thread; this
    thread claims the next batch and makes its request (the transport's ``prepare``) while they
    are out; a recorder writes each answer to the ledger, oldest request first (on PostgreSQL on
    its own connection, so the database works on the claim and the record at once). At most
    ``concurrency + 1`` batches are claimed at once. The one claimed ahead is sent only once a
    request's answer is in and the campaign is still ``sending``; otherwise it goes back to the
    queue. A pausing answer is recorded before anything else happens, and no request starts
    after it; those already out are awaited and recorded.

    The database work goes through connections held for the whole run (:class:`_Held`), not a
    pool checkout per statement: one for claims, one for the still-sending check (autocommit:
    one round trip), and the recorder's own. Leases that ran out (a dead worker's rows) are
    flagged first, by the recorder while the first batch is claimed: a scan of the campaign's
    whole ledger that no claim depends on (claims take queued rows, it changes in-flight ones).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    worker_id = worker_id or default_worker_id()
    result = DispatchResult()
    retry = retry or RetryPolicy()

    def send(batch: _InFlight) -> tuple[BatchOutcome, list[int], TransportError | None]:
        if throttle:
            throttle.pace(len(batch.recipients))
        ids = batch.batch.ids
        sender = BatchSender(transport, message, retry, sleep, throttle,
                             before_retry=lambda: renew_lease(engine, ids, worker_id, lease_seconds))
        outcome, ambiguous, pause = sender.send(batch.recipients, batch.prepared)
        outcome.failed.update(batch.unwritable)
        return outcome, ambiguous, pause

    prepare = _preparer(transport, message)
    cursor = 0
    postgres = engine.dialect.name == "postgresql"

    with _older_objects_frozen(), \
            _Held(engine) as claims, _Held(engine, autocommit=True) if postgres else nullcontext(claims) as checks, \
            ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"send-{campaign_id}") as pool, \
            _Recorder(engine, campaign_id, claims) as recorder:

        def claim() -> _InFlight | None:
            nonlocal cursor
            batch = _claim_next(claims, checks, campaign_id, batch_size, worker_id, lease_seconds, cursor, throttle,
                                make_recipient, result, prepare)
            if batch is None and cursor:
                cursor = 0  # rows re-queued behind us (a pause, a retry): one scan from the start
                batch = _claim_next(claims, checks, campaign_id, batch_size, worker_id, lease_seconds, 0, throttle,
                                    make_recipient, result, prepare)
            if batch is not None:
                cursor = batch.batch.ids[-1]
            return batch

        recorder.first(lambda bind: _expire(bind, campaign_id))
        out: deque[_InFlight] = deque()  # requests sent or being sent, oldest first
        ready: _InFlight | None = None  # claimed and prepared, not sent yet
        claiming = True
        while True:
            if claiming and ready is None:
                ready = claim()
                claiming = ready is not None
            if ready is not None and len(out) < concurrency:
                ready.future = pool.submit(send, ready)
                out.append(ready)
                ready = None
                continue
            if not out:
                break
            oldest = out.popleft()
            assert oldest.future is not None
            answer = oldest.future.result()
            pause = answer[2]
            _count(result, answer)
            if pause is not None:
                recorder.wait()
                claims.run(lambda conn: _settle(conn, campaign_id, oldest, answer))
                result.paused_reason = result.paused_reason or pause.message
                claiming = False
            if ready is not None and (pause is not None or not checks.run(lambda conn: campaign_is_runnable(conn, campaign_id))):
                claims.run(lambda conn: _requeue(conn, ready))  # paused or cancelled while the answer was awaited
                ready, claiming = None, False
            if pause is None:
                if ready is not None:  # goes out while we record
                    ready.future = pool.submit(send, ready)
                    out.append(ready)
                    ready = None
                recorder.record(oldest, answer)
            if on_batch:
                on_batch(result)
    return result

_Answer = tuple[BatchOutcome, list[int], TransportError | None]


@contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Leave the objects that were alive before the send out of the garbage collector's full
    collections until it ends (``gc.freeze``).

    Each batch lives across a few young collections (claimed, in flight, recorded), so its
    thousands of objects reach the oldest generation, and every few batches Python ran a full
    collection over the whole heap (the libraries, the engine, the app): 9 pauses of about 50 ms
    in a 300,000-recipient send, every thread stopped, a sixth of the sender's CPU. Frozen, a
    full collection walks only what the send itself made. Unfrozen afterwards, so garbage among
    the older objects is still collected once the send is over.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


_T = TypeVar("_T")


class _Held:
    """A connection one thread holds for a whole dispatch, so that its units of work
    (:func:`newsletter.db.session_scope` on it) skip what a pooled checkout costs every time: the
    pre-ping round trip and the pool's bookkeeping, several times a batch on the send's busiest
    thread. ``autocommit`` for single reads, which then cost one round trip, with no BEGIN and
    no ROLLBACK around them.

    Held, it skips the pool's pre-ping, so a connection the database dropped (a restart, a
    failover, an administrator) is found only when it is next used. It is then opened again and
    the work done once more, which is safe for all the work done through it: a claim that failed
    sent nothing (had it committed, its rows wait in flight and turn ambiguous, as after any
    crash); a record writes the same values again (had the first one committed, its batch is
    counted twice in the send log's hourly and daily windows, which errs on the slow side); a
    check only reads.
    """

    def __init__(self, engine: Engine, *, autocommit: bool = False) -> None:
        self.engine = engine
        self.autocommit = autocommit
        self.conn = self._open()

    def _open(self) -> Connection:
        conn = self.engine.connect()
        return conn.execution_options(isolation_level="AUTOCOMMIT") if self.autocommit else conn

    def run(self, work: Callable[[Connection], _T]) -> _T:
        try:
            return work(self.conn)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            log.warning("the database dropped a connection this send held (%s); connecting again", error.orig)
            self.conn.close()
            self.conn = self._open()
            return work(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "_Held":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _expire(bind: Bind, campaign_id: int) -> None:
    with session_scope(bind) as session:
        expire_leases(session, campaign_id)


class _Recorder:
    """Writes answers to the ledger behind the dispatcher, one at a time, in order.

    On PostgreSQL a thread of its own, with a connection of its own, records batch N while the
    dispatcher claims batch N+2; on SQLite, which has one writer, it records in line, on the
    dispatcher's connection. At most one record is outstanding: the next waits for it, so a
    failed write surfaces at once and its rows stay in flight (ambiguous after the lease),
    never resent.
    """

    def __init__(self, engine: Engine, campaign_id: int, inline: _Held) -> None:
        self.campaign_id = campaign_id
        self.pool: ThreadPoolExecutor | None = None
        self.held = inline
        self.own: _Held | None = None
        if engine.dialect.name == "postgresql":
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"record-{campaign_id}")
            self.held = self.own = _Held(engine)  # used on the recorder's thread only
        self.pending: Future[None] | None = None

    def first(self, work: Callable[[Connection], None]) -> None:
        """Work to do before the first record (behind the dispatcher where there is a thread)."""
        self._do(lambda: self.held.run(work))

    def record(self, batch: _InFlight, answer: _Answer) -> None:
        self._do(lambda: self.held.run(lambda conn: _settle(conn, self.campaign_id, batch, answer)))

    def _do(self, work: Callable[[], None]) -> None:
        self.wait()
        if self.pool is None:
            work()
        else:
            self.pending = self.pool.submit(work)

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def __enter__(self) -> "_Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.wait()
        finally:
            if self.pool is not None:
                self.pool.shutdown()
            if self.own is not None:
                self.own.close()


def _claim_next(claims: _Held, checks: _Held, campaign_id: int, batch_size: int, worker_id: str, lease_seconds: float,
                cursor: int, throttle: Throttle | None, make_recipient: Callable[[LedgerRow], Recipient],
                result: DispatchResult, prepare: Callable[[list[Recipient]], object | None]) -> _InFlight | None:
    """The next batch with recipients to send, made ready to go, or None when there is nothing
    (more) to do (including when the campaign is no longer ``sending``: the claim checks that)."""
    while True:
        size = (throttle.allowance(batch_size, lambda: not checks.run(lambda conn: campaign_is_runnable(conn, campaign_id)))
                if throttle else batch_size)
        if size <= 0:
            return None
        after = cursor
        batch = claims.run(lambda conn: claim_batch(conn, campaign_id, size, worker_id, lease_seconds, after_id=after))
        if not batch.ids:
            return None
        result.suppressed += len(batch.blocked)
        if batch.rows:
            recipients = [make_recipient(row) for row in batch.rows]
            unwritable = _unwritable(recipients)
            if unwritable:
                recipients = [r for r in recipients if r.delivery_id not in unwritable]
            return _InFlight(batch, recipients, prepare(recipients) if recipients else None, unwritable)
        cursor = batch.ids[-1]  # everyone in it was suppressed: on to the next


def _unwritable(recipients: list[Recipient]) -> dict[int, str]:
    """The recipients no transport could write a message to (delivery id → reason): one bad
    name must cost its own row, not the batch's request or the campaign."""
    bad: dict[int, str] = {}
    for r in recipients:
        if (problem := recipient_problem(r)) is not None:
            bad[r.delivery_id] = f"cannot build the message: {problem}"
    return bad


def _preparer(transport: Transport, message: CampaignMessage) -> Callable[[list[Recipient]], object | None]:
    """The transport's ``prepare`` for this message, if it has one. A batch it cannot prepare
    goes out unprepared: the sending thread meets the same error where it always has, after
    the batch before it has been recorded."""
    prepare = getattr(transport, "prepare", None)

    def prepared(recipients: list[Recipient]) -> object | None:
        if prepare is None:
            return None
        try:
            return prepare(message, recipients)
        except Exception:  # noqa: BLE001 - raised again, in order, by the sending thread
            return None

    return prepared


def _count(result: DispatchResult, answer: _Answer) -> None:
    outcome, ambiguous, _ = answer
    result.batches += 1
    result.sent += len(outcome.sent)
    result.failed += len(outcome.failed)
    result.ambiguous += len(ambiguous)


def _settle(bind: Bind, campaign_id: int, batch: _InFlight, answer: _Answer) -> None:
    """Record one batch's answer in the ledger; a pausing answer pauses the campaign."""
    outcome, ambiguous, pause = answer
    record_outcome(bind, campaign_id, outcome)
    if not ambiguous and pause is None:
        return
    settled = set(outcome.sent) | set(outcome.failed) | set(ambiguous)
    with session_scope(bind) as session:
        _mark(session, bind, ambiguous, status="ambiguous", error="no answer from the provider; it may have been sent")
        if pause is not None:
            back = [r.delivery_id for r in batch.recipients if r.delivery_id not in settled]
            _mark(session, bind, back, status="queued", claimed_by=None, batch_key=None)
            session.execute(update(models.Campaign).where(models.Campaign.id == campaign_id)
                            .values(status="paused", status_reason=pause.message))


def _requeue(bind: Bind, batch: _InFlight) -> None:
    """A claimed batch that was never sent goes back to the queue as it was."""
    with session_scope(bind) as session:
        _mark(session, bind, [*(r.delivery_id for r in batch.recipients), *batch.unwritable], status="queued", claimed_by=None,
              batch_key=None, attempts=D.attempts - 1)
