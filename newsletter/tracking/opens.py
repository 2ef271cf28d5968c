"""Opens: the pixel's events, the hottest path of the product (every image load of every message).

Opens come in batches (:func:`record_opens`; :func:`record_open` is a batch of one): the web
app's :class:`~.recorder.Recorder` hands over everything that arrived together, and a batch is
one read of the ledger rows and one multi-row insert, Core statements on the table, no ORM
objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from newsletter.db.models import utcnow
from newsletter.tracking.classify import Classifier, Verdict, default_classifier
from newsletter.tracking.events import RequestInfo, StoredForms, UnknownDelivery, new_keys
from newsletter.tracking.options import DEFAULT_OPTIONS, TrackingOptions
from newsletter.tracking.queries import Db, EventRow, delivery_owners, insert_event_rows


def record_opens(
    db: Db,
    items: Sequence[tuple[int, RequestInfo, datetime]],
    *,
    options: TrackingOptions = DEFAULT_OPTIONS,
    classifier: Classifier | None = None,
) -> list[Verdict | None]:
    """Store many opens (``(delivery_id, request, when)``) with one read and one multi-row insert;
    returns each verdict, ``None`` where the delivery does not exist (nothing stored for it).
    Opens are not timed: a pre-fetch and a reader look the same at any delay."""
    classifier = classifier or default_classifier()
    found = delivery_owners(db, {d for d, _, _ in items})
    rows: list[EventRow] = []
    out: list[Verdict | None] = []
    keys = new_keys(len(items))
    facts = StoredForms(options)
    verdicts: dict[tuple[str | None, str | None, str], Verdict] = {}  # an open's verdict is its request's
    for i, (delivery_id, request, now) in enumerate(items):
        ledger = found.get(delivery_id)
        if ledger is None:
            out.append(None)
            continue
        asked = (request.user_agent, request.ip, request.method)
        verdict = verdicts.get(asked)
        if verdict is None:
            verdict = verdicts[asked] = classifier.classify(
                kind="open",
                user_agent=request.user_agent,
                ip=request.ip,
                method=request.method,
                seconds_since_sent=None,
            )
        rows.append(
            (
                keys[i],
                "open",
                "tracking",
                ledger[0],
                delivery_id,
                ledger[1],
                None,
                verdict.is_machine,
                verdict.reason,
                now,
                facts.ip(request.ip),
                facts.agent(request.user_agent),
                None,
            )
        )
        out.append(verdict)
    insert_event_rows(db, rows)  # one statement for the whole batch
    return out


def record_open(
    session: Db,
    delivery_id: int,
    request: RequestInfo,
    now: datetime | None = None,
    *,
    options: TrackingOptions = DEFAULT_OPTIONS,
    classifier: Classifier | None = None,
) -> Verdict:
    """Store one open for ``delivery_id``; returns the verdict. Raises :class:`UnknownDelivery`."""
    [verdict] = record_opens(session, [(delivery_id, request, now or utcnow())], options=options, classifier=classifier)
    if verdict is None:
        raise UnknownDelivery(f"no delivery {delivery_id}")
    return verdict
