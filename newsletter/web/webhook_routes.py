"""``POST /webhooks/sendgrid``: SendGrid's signed Event Webhook.

Order matters: the body is read whole (capped by :class:`~newsletter.web.middleware.BodyLimit`,
413 above ``NEWSLETTER_WEBHOOK_MAX_BYTES``), the signature and timestamp are checked over the
exact bytes, and only then is it parsed and stored. Any refusal stores nothing:

=====  ===================================================================================
401    signature or timestamp header missing
403    signature malformed or not matching, or timestamp more than 10 minutes from now
400    not JSON, not an array, or an item that is not an event object
413    body over the cap
503    no public key configured (and insecure mode not allowed), or the key is not valid
200    stored: ``{"received", "stored", "duplicates", "unknown_message", "machine", "suppressed"}``
=====  ===================================================================================

SendGrid retries anything but a 2xx for up to 24 hours; that is what we want for a store that is
briefly down, and harmless for a batch we already have (each ``sg_event_id`` is stored once).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.tracking import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    IngestResult,
    MalformedBatch,
    WebhookError,
    parse_batch,
    prepare_batch,
    store_batch,
)
from newsletter.web.common import AppState, state

log = logging.getLogger(__name__)

_NO_STORE = {"Cache-Control": "no-store"}


def _answer(status: int, **body: Any) -> Response:
    return JSONResponse(body, status_code=status, headers=_NO_STORE)


async def sendgrid_events(request: Request) -> Response:
    app = state(request)
    if app.webhook_refusal is not None:
        return _answer(503, error=app.webhook_refusal)
    body = await request.body()
    headers = request.headers
    # The rest is CPU (a hash over the body, parsing, mapping) and the store: off the event loop,
    # so the pixel and the redirect keep being answered while a post is worked on.
    return await run_in_threadpool(_handle, app, headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER), body)


def _handle(app: AppState, signature: str | None, timestamp: str | None, body: bytes) -> Response:
    if app.webhook_verifier is not None:
        try:
            app.webhook_verifier.verify(signature, timestamp, body, now=app.tracking.clock())
        except WebhookError as refused:
            log.warning("SendGrid webhook post refused: %s", refused)
            return _answer(refused.status, error=str(refused))
    try:
        events = parse_batch(body)
    except MalformedBatch as bad:
        return _answer(400, error=str(bad))
    return _answer(200, **_ingest(app, events).to_dict())


def _ingest(app: AppState, events: list[dict[str, Any]]) -> IngestResult:
    """Prepare (reads only) in one transaction, store in another, on one connection.

    On SQLite the store half runs under a process-wide lock: SQLite has one writer at a time,
    and a second writer would wait in SQLite's busy handler, which sleeps in steps of up to
    100 ms. With the lock, one post is prepared (Python) while another is written (SQLite, which
    releases the GIL), so concurrent posts overlap instead of queueing; and its commit leaves the
    WAL checkpoint to a background thread (:class:`~newsletter.db.checkpoints.Checkpointer`).
    PostgreSQL needs neither.
    """
    with app.engine.connect() as conn:
        with conn.begin():  # ends before the wait: SQLite's read snapshot is not held meanwhile
            prepared = prepare_batch(conn, events, options=app.tracking)
        if app.checkpointer is None:  # PostgreSQL
            with conn.begin():
                return store_batch(conn, prepared, options=app.tracking)
        # SQLite: the commit leaves the WAL checkpoint to a thread of its own (db/checkpoints.py)
        with app.webhook_write_lock, app.checkpointer.deferred(conn), conn.begin():
            return store_batch(conn, prepared, options=app.tracking)
