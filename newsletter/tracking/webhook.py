"""The Event Webhook's ingest: a verified, parsed post → events rows, verdicts and suppressions.

:mod:`.sendgrid` reads the post and says what each event means; this module looks events up in
the store, classifies them, stores them once and suppresses. The web room verifies the signature
first (:mod:`.signature`) and calls :func:`.sendgrid.parse_batch` then :func:`ingest_events`
(or its two halves, :func:`prepare_batch` outside the SQLite write lock and :func:`store_batch`
inside it); nothing here knows about HTTP.

* **Once**: one multi-row insert per batch that skips keys already stored (``ON CONFLICT
  (event_key) DO NOTHING``; :func:`.queries.insert_event_rows` says how each store learns which
  rows were new), so a batch SendGrid retries is counted once, and suppression acts on the rows
  that were new.
* **Human or machine**: opens and clicks go through :func:`.classify.classify`, the function the
  pixel and the redirect use; ``sg_machine_open`` is one of its rules, and clicks on several
  links of one message within a second (in the batch or already stored) are ``burst_clicks``.
  Leads are never made here: a click SendGrid saw passed through our redirect, which decides.
* **Suppression** (:mod:`.suppression`): what :func:`.sendgrid.suppression_of` names, and
  ``blocked`` (soft) once an address has ``soft_bounce_limit`` of them since its last
  ``delivered``.
* **Privacy**: the address becomes the subscriber id (or a suppression row).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from newsletter.db.models import utcnow
from newsletter.tracking.classify import Classifier, default_classifier
from newsletter.tracking.clicks import mark_burst
from newsletter.tracking.options import DEFAULT_OPTIONS, TrackingOptions
from newsletter.tracking.queries import (
    CAMPAIGN_LINKS,
    LEDGER_BY_ADDRESS,
    SEND_LOG_CAMPAIGNS,
    SOFT_BOUNCES,
    STORED_CLICKS,
    Db,
    EventRow,
    delivery_owners,
    delivery_times,
    insert_event_rows,
)
from newsletter.tracking.sendgrid import (
    MalformedBatch,
    SendGridEvent,
    event_rows,
    normalise,
    parse_batch,
    stored_url,
    suppression_of,
)
from newsletter.tracking.suppression import SuppressionRequest, suppress

__all__ = [
    "IngestResult",
    "MalformedBatch",
    "PreparedBatch",
    "ingest_events",
    "parse_batch",
    "prepare_batch",
    "store_batch",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class IngestResult:
    received: int
    stored: int  # new rows; received - stored were already stored (SendGrid retries) or repeated in the post
    unknown_message: int  # stored without a delivery
    machine: int  # of the stored opens and clicks
    suppressed: int  # addresses newly on the suppression list

    @property
    def duplicates(self) -> int:
        return self.received - self.stored

    def to_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "unknown_message": self.unknown_message,
            "machine": self.machine,
            "suppressed": self.suppressed,
        }


def _chunks(items: Sequence[Any], size: int = 5000) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _by_message_id(
    session: Db, wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, int, int, datetime | None]]:
    """(message id, address) → (delivery, campaign, subscriber, sent at), for events without our
    custom_args (:data:`.queries.SEND_LOG_CAMPAIGNS`, then :data:`.queries.LEDGER_BY_ADDRESS`,
    whose row's message id must be the event's)."""
    out: dict[tuple[str, str], tuple[int, int, int, datetime | None]] = {}
    for chunk in _chunks(sorted(wanted), 1000):
        campaigns = dict(session.execute(SEND_LOG_CAMPAIGNS, {"message_ids": sorted({m for m, _ in chunk})}).all())
        emails = {email for message_id, email in chunk if message_id in campaigns}
        if not emails:
            continue
        rows = session.execute(
            LEDGER_BY_ADDRESS, {"emails": sorted(emails), "campaigns": sorted(set(campaigns.values()))}
        )
        for message_id, email, did, cid, sid, sent_at in rows:
            if message_id is not None and (message_id, email) in wanted:  # None is never wanted
                out[(message_id, email)] = (did, cid, sid, sent_at)
    return out


def _resolve_deliveries(session: Db, events: list[SendGridEvent]) -> None:
    ids = {e.delivery_id for e in events if e.delivery_id is not None}
    timed = {e.delivery_id for e in events if e.delivery_id is not None and e.type == "click"}
    found: dict[int, tuple[int, int, datetime | None]] = {}
    if ids:  # the send time only where a click needs it: reading times back is the slow part
        for did, (cid, sid) in delivery_owners(session, ids - timed).items():
            found[did] = (cid, sid, None)
        found.update(delivery_times(session, timed))
    # Fallback: X-Message-Id (one per request) + the recipient's address.
    wanted = {
        (e.message_prefix, e.email) for e in events if e.delivery_id not in found and e.message_prefix and e.email
    }
    by_message: dict[tuple[str, str], int] = {}
    for pair, (did, cid, sid, sent_at) in _by_message_id(session, wanted).items():
        by_message[pair] = did
        found[did] = (cid, sid, sent_at)
    for e in events:
        if e.delivery_id not in found:
            e.delivery_id = by_message.get((e.message_prefix or "", e.email or ""))
        if e.delivery_id is not None:
            e.campaign_id, e.subscriber_id, e.sent_at = found[e.delivery_id]


def _resolve_links(session: Db, clicks: list[SendGridEvent]) -> None:
    wanted: dict[tuple[int, int], list[SendGridEvent]] = {}
    for e in clicks:
        campaign_id = e.campaign_id
        position = e.link_position if campaign_id is not None else None
        if campaign_id is not None and position is not None:
            wanted.setdefault((campaign_id, position), []).append(e)
    if not wanted:
        return
    for cid, position, lid, _url, kind in CAMPAIGN_LINKS.execute(session, ids={c for c, _ in wanted}):
        for e in wanted.get((cid, position), ()):
            e.link_id, e.link_kind = lid, kind


def _find_bursts(session: Db, clicks: list[SendGridEvent], classifier: Classifier) -> list[int]:
    """Mark the batch's clicks that are part of a burst; return ids of stored clicks to re-mark."""
    groups: dict[Any, list[SendGridEvent]] = {}
    for e in clicks:
        group = e.delivery_id if e.delivery_id is not None else (e.message_prefix, e.email)
        if group != (None, None):
            groups.setdefault(group, []).append(e)
    window = timedelta(seconds=classifier.burst_seconds)
    stored: dict[int, list[tuple[int, Any, datetime]]] = {}
    known = sorted(g for g in groups if isinstance(g, int))
    if known:
        earliest = min(e.occurred_at for e in clicks) - window
        latest = max(e.occurred_at for e in clicks) + window
        for eid, did, link_id, data, occurred_at in STORED_CLICKS.execute(
            session, ids=known, since=earliest, until=latest
        ):
            stored.setdefault(did, []).append((eid, link_id or stored_url(data), occurred_at))
    again: list[int] = []
    for group, events in groups.items():
        if len(events) + len(stored.get(group, [])) < classifier.burst_links:
            continue
        old = stored.get(group, [])
        points = [((e.occurred_at - _EPOCH).total_seconds(), e.link_id or e.url) for e in events]
        points += [((t - _EPOCH).total_seconds(), link) for _, link, t in old]
        for i in classifier.find_bursts(points):
            if i < len(events):
                events[i].burst = True
            else:
                again.append(old[i - len(events)][0])
    return again


_JUDGED: dict[str, Literal["open", "click"]] = {"open": "open", "click": "click"}  # the kinds classified


def _classify(events: list[SendGridEvent], classifier: Classifier) -> None:
    judge = classifier.classify
    for e in events:
        kind = _JUDGED.get(e.type)
        if kind is None:
            continue
        seconds = (e.occurred_at - e.sent_at).total_seconds() if kind == "click" and e.sent_at else None
        verdict = judge(
            kind=kind,
            user_agent=e.user_agent,
            ip=e.ip,
            method="GET",
            seconds_since_sent=seconds,
            link_kind=e.link_kind,
            burst=e.burst,
            sg_machine_open=e.machine_open,
        )
        e.is_machine, e.reason = verdict.is_machine, verdict.reason


def _suppression_requests(session: Db, new: list[SendGridEvent], options: TrackingOptions) -> list[SuppressionRequest]:
    requests: list[SuppressionRequest] = []
    for e in new:
        named = suppression_of(e)
        if named is not None:
            requests.append(SuppressionRequest(named[0], e.subscriber_id, e.email, named[1]))
    soft = sorted({e.subscriber_id for e in new if e.type == "blocked" and e.subscriber_id is not None})
    for chunk in _chunks(soft):
        counts = _soft_bounce_counts(session, chunk)
        for sid, count in counts.items():
            if count >= options.soft_bounce_limit:
                requests.append(SuppressionRequest("bounced", sid, None, f"sendgrid: {count} soft bounces"))
    return requests


def _soft_bounce_counts(session: Db, subscriber_ids: Sequence[int]) -> dict[int, int]:
    """Soft bounces per subscriber since their last ``delivered`` event (or ever)."""
    return {sid: n for sid, n in session.execute(SOFT_BOUNCES, {"subscribers": list(subscriber_ids)}).all()}


@dataclass
class PreparedBatch:
    """A post read, mapped and classified, ready to store (:func:`prepare_batch`)."""

    received: int
    events: list[SendGridEvent]
    rows: list[EventRow]
    burst_ids: list[int]  # stored clicks found inside a burst, to re-mark
    now: datetime


def prepare_batch(
    session: Db,
    raw_events: Sequence[dict[str, Any]],
    *,
    now: datetime | None = None,
    options: TrackingOptions = DEFAULT_OPTIONS,
    classifier: Classifier | None = None,
) -> PreparedBatch:
    """Everything but the writes: normalise, map to ledger rows and links, find bursts, classify.

    Reads only, so on SQLite the web app runs it outside the write lock while another post is
    being stored (:func:`store_batch` is the part that writes)."""
    now = now or utcnow()
    classifier = classifier or default_classifier()
    events = normalise(raw_events, now)
    again: list[int] = []
    if events:
        _resolve_deliveries(session, events)
        clicks = [e for e in events if e.type == "click"]
        if clicks:
            _resolve_links(session, clicks)
            again = _find_bursts(session, clicks, classifier)
        _classify(events, classifier)
    return PreparedBatch(len(raw_events), events, event_rows(events, options), again, now)


def store_batch(session: Db, batch: PreparedBatch, *, options: TrackingOptions = DEFAULT_OPTIONS) -> IngestResult:
    """The writes: one multi-row insert that skips what is already stored, the re-marked burst
    clicks, then suppression for the events that were new. The caller commits."""
    if not batch.events:
        return IngestResult(batch.received, 0, 0, 0, 0)
    new_keys = set(insert_event_rows(session, batch.rows, new_keys=True))
    new = [e for e in batch.events if e.key in new_keys]
    if batch.burst_ids:
        mark_burst(session, batch.burst_ids, batch.now)
    requests = _suppression_requests(session, new, options)
    added = suppress(session, requests, now=batch.now, source="sendgrid").suppressions_added if requests else 0
    return IngestResult(
        received=batch.received,
        stored=len(new),
        unknown_message=sum(1 for e in new if e.delivery_id is None),
        machine=sum(1 for e in new if e.is_machine),
        suppressed=added,
    )


def ingest_events(
    session: Db,
    raw_events: Sequence[dict[str, Any]],
    *,
    now: datetime | None = None,
    options: TrackingOptions = DEFAULT_OPTIONS,
    classifier: Classifier | None = None,
) -> IngestResult:
    """Store a batch (already verified and parsed) in the session's transaction: :func:`prepare_batch`
    then :func:`store_batch`. See the module docstring. The caller commits."""
    prepared = prepare_batch(session, raw_events, now=now, options=options, classifier=classifier)
    return store_batch(session, prepared, options=options)
