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
from contextlib import nullcontext
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.db import session_scope
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
    if app.webhook_verifier is not None:
        try:
            app.webhook_verifier.verify(request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER),
                                        body, now=app.tracking.clock())
        except WebhookError as refused:
            log.warning("SendGrid webhook post refused: %s", refused)
            return _answer(refused.status, error=str(refused))
    try:
        events = parse_batch(body)
    except MalformedBatch as bad:
        return _answer(400, error=str(bad))
    result = await run_in_threadpool(_ingest, app, events)
    return _answer(200, **result.to_dict())


def _ingest(app: AppState, events: list[dict[str, Any]]) -> IngestResult:
    """Prepare (reads only) in one transaction, store in another.

    On SQLite the store half runs under a process-wide lock: SQLite has one writer at a time,
    and a second writer would wait in SQLite's busy handler, which sleeps in steps of up to
    100 ms. With the lock, one post is prepared (Python) while another is written (SQLite, which
    releases the GIL), so concurrent posts overlap instead of queueing. PostgreSQL needs no lock.
    """
    with session_scope(app.engine) as session:
        prepared = prepare_batch(session, events, options=app.tracking)
    lock = app.webhook_write_lock if app.engine.dialect.name == "sqlite" else nullcontext()
    with lock, session_scope(app.engine) as session:
        return store_batch(session, prepared, options=app.tracking)
