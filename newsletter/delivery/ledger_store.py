"""The ledger store: every statement the dispatcher runs against the ledger, each named.

The ledger (``deliveries``) is how a send stays exactly once, or flagged. A batch is moved to
``in_flight`` (with a lease) in its own committed transaction *before* the request
(:func:`claim_batch`), and to ``sent``/``failed`` after the answer (:func:`record_outcome`).
A worker that dies in between leaves rows ``in_flight``; when their lease runs out they become
``ambiguous`` (:func:`expire_leases`) and are never resent without an operator's word.

The statements, and why each is shaped as it is:

- :func:`claim_batch`: one UPDATE … RETURNING that checks the campaign is still ``sending``;
  on PostgreSQL with ``SKIP LOCKED`` and the recipients' lookup in the same statement.
- :func:`record_outcome`: one transaction per answer, one statement for a batch's single
  message id; on PostgreSQL compiled once and run through psycopg, without a WAL-flush wait.
- :func:`renew_lease`: pushes a batch's lease out while it waits to be retried.
- :func:`expire_leases`: flags a dead worker's in-flight rows ``ambiguous``.
- :func:`mark_ambiguous_and_pause`: what an ambiguous or pausing answer leaves behind.
- :func:`requeue`: a claimed batch that was never sent goes back as it was.
- :func:`campaign_is_runnable`: the still-sending check, asked after every answer.

Which store, and which id-list form, are asked of :mod:`newsletter.db.dialect` only.

One file, over ~400 lines, on purpose: issue 15 asks for one ledger store, every statement that
moves a delivery between states in one place, so that whether the exactly-once promise holds
can be read in one file rather than pieced together from several.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    any_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    null,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.db import models, rows_changed, session_scope
from newsletter.db.dialect import id_in, is_postgres, pg_array_literal, pg_id_in
from newsletter.db.models import utcnow
from newsletter.delivery.message import BatchOutcome

D = models.Delivery
S = models.Subscriber

#: Where a unit of work goes: the engine (a pooled connection each time) or a connection the
#: dispatch holds for its whole run (see :func:`newsletter.delivery.dispatch.dispatch`).
Bind = Engine | Connection


class LedgerRow(NamedTuple):
    """Who one claimed row goes to. A named tuple: a thousand are made per batch on the claiming
    thread, at a third of a frozen dataclass's cost."""

    delivery_id: int
    email: str
    first_name: str | None
    last_name: str | None


def expire_leases(session: Session, campaign_id: int, now: datetime | None = None) -> int:
    """In-flight rows whose lease ran out belong to a dead worker: flag them ambiguous."""
    now = now or utcnow()
    return rows_changed(
        session,
        (
            update(D)
            .where(D.campaign_id == campaign_id, D.status == "in_flight", D.lease_until < now)
            .values(status="ambiguous", error="worker lease expired before the answer was recorded", updated_at=now)
        ),
    )


@dataclass
class ClaimedBatch:
    """Rows moved to in_flight under our name: those still sendable, and those to suppress."""

    ids: list[int]
    rows: list[LedgerRow]
    blocked: list[int]


def claim_batch(
    bind: Bind, campaign_id: int, size: int, worker_id: str, lease_seconds: float, after_id: int = 0
) -> ClaimedBatch:
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
    values = {
        "claim_campaign": campaign_id,
        "claim_after": after_id,
        "claim_size": size,
        "claim_worker": worker_id,
        # Which claim took a row, nothing more: random.getrandbits, not uuid4, whose
        # os.urandom call lets go of the GIL and may wait a switch interval to get it back.
        "claim_key": f"{random.getrandbits(128):032x}",
        "claim_lease": now + timedelta(seconds=lease_seconds),
        "claim_now": now,
    }
    with session_scope(bind) as session:
        if is_postgres(bind):
            people = _claim_with_recipients(session, values)
        else:
            claim, candidates = _claim_statement()
            claimed = session.execute(
                claim.where(D.id.in_(candidates.scalar_subquery()))
                .returning(D.id, D.subscriber_id)
                .execution_options(synchronize_session=False),
                values,
            ).all()
            people = _recipients_of(session, bind, claimed)
        rows: list[LedgerRow] = []
        blocked: list[int] = []
        for delivery_id, email, first_name, last_name, sendable in people:
            if sendable and email is not None:  # sendable implies a subscriber, so an address
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
    candidates = (
        select(D.id)
        .where(
            D.campaign_id == bindparam("claim_campaign"),
            D.status == "queued",
            D.id > bindparam("claim_after"),
            runnable,
        )
        .order_by(D.id)
        .limit(bindparam("claim_size", type_=Integer()))
    )
    claim = update(D).values(
        status="in_flight",
        claimed_by=bindparam("claim_worker"),
        batch_key=bindparam("claim_key"),
        attempts=D.attempts + 1,
        lease_until=bindparam("claim_lease", type_=models.UTCDateTime()),
        updated_at=bindparam("claim_now", type_=models.UTCDateTime()),
    )
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
    statement = (
        select(claimed.c.id, S.email, S.first_name, S.last_name, func.coalesce(models.sendable(), False))
        .select_from(claimed.outerjoin(S, S.id == claimed.c.subscriber_id))
        .order_by(claimed.c.id)
    )
    compiled = statement.compile(dialect=dialect)
    return str(compiled), dict(compiled.params)


def _claim_with_recipients(session: Session, values: dict[str, Any]) -> list[_Person]:
    """PostgreSQL: run :func:`_pg_claim_sql` in the session's transaction through psycopg's own
    cursor: a thousand plain tuples made in C, not SQLAlchemy result rows (the claiming thread
    is the send's busiest)."""
    conn = session.connection()
    sql, constants = _pg_claim_sql(conn.dialect)
    driver = conn.connection.driver_connection
    assert driver is not None  # an open connection always has its driver's connection
    with driver.cursor() as cursor:
        return cast(list[_Person], cursor.execute(sql, {**constants, **values}).fetchall())


def _recipients_of(session: Session, bind: Bind, claimed: Sequence[Any]) -> list[_Person]:
    """The claimed rows' recipients, by primary key (not a join, so the plan stays an index
    probe at any list size); a row whose subscriber is gone may not be mailed."""
    ordered = sorted((delivery_id, subscriber_id) for delivery_id, subscriber_id in claimed)  # plain tuples sort fast
    found = {
        row[0]: row
        for row in session.execute(
            select(S.id, S.email, S.first_name, S.last_name, models.sendable()).where(
                id_in(bind, S.id, [subscriber for _, subscriber in ordered])
            )
        )
    }
    people: list[_Person] = []
    for delivery_id, subscriber_id in ordered:
        person = found.get(subscriber_id)
        people.append(
            (delivery_id, None, None, None, False)
            if person is None
            else (delivery_id, person[1], person[2], person[3], bool(person[4]))
        )
    return people


def _mark(session: Session, bind: Bind, ids: Sequence[int], **values: object) -> None:
    if ids:
        session.execute(
            update(D)
            .where(id_in(bind, D.id, ids))
            .values(updated_at=utcnow(), lease_until=None, **values)
            .execution_options(synchronize_session=False)
        )


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
    failed: list[dict[str, Any]] = [
        {"id": d, "error": reason[:2000], "now": now} for d, reason in outcome.failed.items()
    ]
    with session_scope(bind) as session:
        if is_postgres(bind):
            _record_on_postgres(session, outcome.sent, by_message, failed, log, now)
            return
        if len(by_message) > 1:
            session.execute(
                update(D),
                [
                    {
                        "id": d,
                        "status": "sent",
                        "message_id": m,
                        "sent_at": now,
                        "updated_at": now,
                        "lease_until": None,
                        "error": None,
                    }
                    for d, m in outcome.sent.items()
                ],
            )
        else:
            for message_id, ids in by_message.items():
                _mark(session, bind, ids, status="sent", message_id=message_id, sent_at=now, error=None)
        for row in failed:
            _mark(session, bind, [row["id"]], status="failed", error=row["error"])
        if log:
            session.execute(insert(models.SendLog), log)


def _send_log_rows(
    campaign_id: int, by_message: dict[str | None, list[int]], now: datetime, *, per_recipient_ids: bool = False
) -> list[dict[str, Any]]:
    """The send log's rows for one answer: one per provider message id (SendGrid gives one per
    request, and a batch split after a 400 went out as several), or a single row without an id
    when each recipient got their own (the outbox: a million ids would say nothing)."""
    if not by_message:
        return []
    if per_recipient_ids:
        return [
            {
                "campaign_id": campaign_id,
                "message_id": None,
                "recorded_at": now,
                "recipients": sum(len(ids) for ids in by_message.values()),
            }
        ]
    return [
        {"campaign_id": campaign_id, "message_id": m, "recipients": len(ids), "recorded_at": now}
        for m, ids in by_message.items()
    ]


def _record_on_postgres(
    session: Session,
    sent: dict[int, str | None],
    by_message: dict[str | None, list[int]],
    failed: list[dict[str, Any]],
    log: list[dict[str, Any]],
    now: datetime,
) -> None:
    """PostgreSQL: the record as statements compiled once (:func:`_pg_record_sql`), run through
    psycopg's own cursor in the session's transaction.

    The recorder runs beside the claiming thread, the send's busiest; the ORM's statement
    building and bulk insert cost it about 3 ms of Python a batch, all of it holding the GIL
    the claiming thread waits for. This way the sender's CPU per request fell by a tenth
    (alternating runs at 300,000, against the fake's CPU in the same run).
    """
    sql = _pg_record_sql(session.get_bind().dialect)
    driver = session.connection().connection.driver_connection
    assert driver is not None  # an open connection always has its driver's connection
    with driver.cursor() as cursor:
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
    sent = dict(
        status=literal_column("'sent'"),
        message_id=bindparam("message_id"),
        sent_at=when,
        updated_at=when,
        lease_until=null(),
        error=null(),
    )
    statements = {
        "sent": update(D).where(pg_id_in(D.id)).values(**sent),
        "sent_one": update(D).where(D.id == bindparam("id")).values(**sent),
        "failed": update(D)
        .where(D.id == bindparam("id"))
        .values(status=literal_column("'failed'"), error=bindparam("error"), updated_at=when, lease_until=null()),
        "log": insert(models.SendLog)
        .inline()
        .values(
            campaign_id=bindparam("campaign_id"),
            message_id=bindparam("message_id"),
            recipients=bindparam("recipients"),
            recorded_at=bindparam("recorded_at", type_=models.UTCDateTime()),
        ),
    }
    return {name: str(statement.compile(dialect=dialect)) for name, statement in statements.items()}


def renew_lease(engine: Engine, ids: Sequence[int], worker_id: str, lease_seconds: float) -> None:
    """Still working on it (waiting to retry): push the lease out so nobody calls it dead."""
    with session_scope(engine) as session:
        session.execute(
            update(D)
            .where(id_in(engine, D.id, ids), D.status == "in_flight", D.claimed_by == worker_id)
            .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
        )


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


def mark_ambiguous_and_pause(
    bind: Bind, campaign_id: int, ambiguous: Sequence[int], pause_reason: str | None, unsent: Sequence[int]
) -> None:
    """After an answer that was not simply recorded: rows with no answer become ``ambiguous``
    (they may have been sent, so they are never resent blindly); on a pausing answer the rows
    not yet sent go back to the queue and the campaign is paused, in the same transaction, so
    a resume finds them queued."""
    with session_scope(bind) as session:
        _mark(session, bind, ambiguous, status="ambiguous", error="no answer from the provider; it may have been sent")
        if pause_reason is not None:
            _mark(session, bind, unsent, status="queued", claimed_by=None, batch_key=None)
            session.execute(
                update(models.Campaign)
                .where(models.Campaign.id == campaign_id)
                .values(status="paused", status_reason=pause_reason)
            )


def requeue(bind: Bind, ids: Sequence[int]) -> None:
    """A claimed batch that was never sent goes back to the queue as it was: its claim is not
    counted as an attempt."""
    with session_scope(bind) as session:
        _mark(session, bind, ids, status="queued", claimed_by=None, batch_key=None, attempts=D.attempts - 1)
