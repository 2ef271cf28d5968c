"""The send loop: claim a batch from the ledger, send it, record the answer, repeat.

Exactly once, or flagged: the ledger's statements and why they keep that promise are in
:mod:`newsletter.delivery.ledger_store`; sending one batch with its retry policy is
:mod:`newsletter.delivery.batch_sender`. This module is the pipeline between them: claim →
build → send → settle, and the threads that overlap those steps; the database connections it
holds and the recorder behind it are :mod:`newsletter.delivery.held_connections`.

This module knows the ledger and transports, not templates or the web: the caller passes
``make_recipient`` to turn a ledger row into a personalised :class:`Recipient`.
"""

from __future__ import annotations

import gc
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import Engine

from newsletter.db import session_scope
from newsletter.db.dialect import is_postgres
from newsletter.delivery.batch_sender import BatchAnswer, BatchSender, RetryPolicy
from newsletter.delivery.held_connections import HeldConnection, LedgerRecorder
from newsletter.delivery.ledger_store import (
    Bind,
    ClaimedBatch,
    LedgerRow,
    campaign_is_runnable,
    claim_batch,
    expire_leases,
    mark_ambiguous_and_pause,
    record_outcome,
    renew_lease,
    requeue,
)
from newsletter.delivery.message import CampaignMessage, Recipient, Transport
from newsletter.delivery.mime import recipient_problem
from newsletter.delivery.throttle import Throttle

# The ledger's statements and the batch sender are re-exported: other rooms and the tests
# import them from here (``record_outcome`` is looked up here at each settle, so a test can
# replace it).
__all__ = [
    "BatchSender",
    "ClaimedBatch",
    "DispatchResult",
    "LedgerRow",
    "RetryPolicy",
    "campaign_is_runnable",
    "claim_batch",
    "default_worker_id",
    "dispatch",
    "expire_leases",
    "record_outcome",
    "renew_lease",
]


@dataclass
class DispatchResult:
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    ambiguous: int = 0
    batches: int = 0
    paused_reason: str | None = None
    errors: list[str] = field(default_factory=list)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


@dataclass
class _InFlight:
    """A claimed batch and, once submitted, the future of its request."""

    batch: ClaimedBatch
    recipients: list[Recipient]
    prepared: object | None = None  # the transport's request, made on the claiming thread
    #: Rows of the batch left out of ``recipients`` because their header cannot be written:
    #: delivery id → reason. They fail with the batch's answer; the others are sent.
    unwritable: dict[int, str] = field(default_factory=dict)
    future: Future[BatchAnswer] | None = None


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

    The database work goes through connections held for the whole run (:class:`HeldConnection`),
    not a pool checkout per statement: one for claims, one for the still-sending check (autocommit:
    one round trip), and the recorder's own. Leases that ran out (a dead worker's rows) are
    flagged first, by the recorder while the first batch is claimed: a scan of the campaign's
    whole ledger that no claim depends on (claims take queued rows, it changes in-flight ones).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    worker_id = worker_id or default_worker_id()
    result = DispatchResult()
    retry = retry or RetryPolicy()

    def send(batch: _InFlight) -> BatchAnswer:
        if throttle:
            throttle.pace(len(batch.recipients))
        ids = batch.batch.ids
        sender = BatchSender(
            transport,
            message,
            retry,
            sleep,
            throttle,
            before_retry=lambda: renew_lease(engine, ids, worker_id, lease_seconds),
        )
        outcome, ambiguous, pause = sender.send(batch.recipients, batch.prepared)
        outcome.failed.update(batch.unwritable)
        return outcome, ambiguous, pause

    prepare = _preparer(transport, message)
    cursor = 0
    postgres = is_postgres(engine)

    with (
        _older_objects_frozen(),
        HeldConnection(engine) as claims,
        HeldConnection(engine, autocommit=True) if postgres else nullcontext(claims) as checks,
        ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"send-{campaign_id}") as pool,
        LedgerRecorder(engine, campaign_id, claims) as recorder,
    ):

        def claim_from(start: int) -> _InFlight | None:
            return _claim_next(
                claims,
                checks,
                campaign_id,
                batch_size,
                worker_id,
                lease_seconds,
                start,
                throttle,
                make_recipient,
                result,
                prepare,
            )

        def claim() -> _InFlight | None:
            nonlocal cursor
            batch = claim_from(cursor)
            if batch is None and cursor:
                cursor = 0  # rows re-queued behind us (a pause, a retry): one scan from the start
                batch = claim_from(0)
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
                claims.run(partial(_settle, campaign_id=campaign_id, batch=oldest, answer=answer))
                result.paused_reason = result.paused_reason or pause.message
                claiming = False
            if ready is not None and (
                pause is not None or not checks.run(lambda conn: campaign_is_runnable(conn, campaign_id))
            ):
                claims.run(partial(_requeue, batch=ready))  # paused or cancelled while the answer was awaited
                ready, claiming = None, False
            if pause is None:
                if ready is not None:  # goes out while we record
                    ready.future = pool.submit(send, ready)
                    out.append(ready)
                    ready = None
                recorder.record(partial(_settle, campaign_id=campaign_id, batch=oldest, answer=answer))
            if on_batch:
                on_batch(result)
    return result


_Answer = BatchAnswer


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


def _expire(bind: Bind, campaign_id: int) -> None:
    with session_scope(bind) as session:
        expire_leases(session, campaign_id)


def _claim_next(
    claims: HeldConnection,
    checks: HeldConnection,
    campaign_id: int,
    batch_size: int,
    worker_id: str,
    lease_seconds: float,
    cursor: int,
    throttle: Throttle | None,
    make_recipient: Callable[[LedgerRow], Recipient],
    result: DispatchResult,
    prepare: Callable[[list[Recipient]], object | None],
) -> _InFlight | None:
    """The next batch with recipients to send, made ready to go, or None when there is nothing
    (more) to do (including when the campaign is no longer ``sending``: the claim checks that)."""
    while True:
        size = (
            throttle.allowance(batch_size, lambda: not checks.run(lambda conn: campaign_is_runnable(conn, campaign_id)))
            if throttle
            else batch_size
        )
        if size <= 0:
            return None
        batch = claims.run(
            partial(
                claim_batch,
                campaign_id=campaign_id,
                size=size,
                worker_id=worker_id,
                lease_seconds=lease_seconds,
                after_id=cursor,
            )
        )
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
    """The transport's ``prepare`` for this message. A batch it cannot prepare goes out
    unprepared: the sending thread meets the same error where it always has, after the batch
    before it has been recorded."""

    def prepared(recipients: list[Recipient]) -> object | None:
        try:
            return transport.prepare(message, recipients)
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
    unsent = [r.delivery_id for r in batch.recipients if r.delivery_id not in settled]
    mark_ambiguous_and_pause(bind, campaign_id, ambiguous, None if pause is None else pause.message, unsent)


def _requeue(bind: Bind, batch: _InFlight) -> None:
    """A claimed batch that was never sent goes back to the queue as it was."""
    requeue(bind, [*(r.delivery_id for r in batch.recipients), *batch.unwritable])
