"""SendGrid Event Webhook ingest: a verified batch → events rows, verdicts and suppressions.

:func:`parse_batch` turns the raw body into a list of event objects (or refuses it whole);
:func:`ingest_events` stores a batch. The web room verifies the signature first
(:mod:`.signature`) and calls these two; nothing here knows about HTTP.

Mapping, one small table each (SendGrid's quirks in one place):

* **Ledger row**: our ``custom_args`` (``delivery_id``, sent in every personalization) come back
  as top-level keys of each event. Without them, ``sg_message_id`` up to its first dot is the
  ``X-Message-Id`` of one request of up to 1000 recipients: the send log names its campaign and
  the event's address picks the recipient. Neither found → stored without a delivery.
* **Type**: SendGrid's ``event`` as is (``processed``, ``dropped``, ``delivered``, ``deferred``,
  ``bounce``, ``open``, ``click``, ``spamreport``, ``unsubscribe``, ``group_unsubscribe``,
  ``group_resubscribe``), except a ``bounce`` of ``type: blocked`` (and an ``event: blocked``),
  stored as ``blocked``: a soft bounce. Unknown types are stored as they come, raw data kept.
* **Once**: ``event_key = "sg:" + sg_event_id``; one multi-row insert per batch that skips keys
  already stored (``ON CONFLICT (event_key) DO NOTHING``; :func:`.sql.insert_event_rows` says how
  each store learns which rows were new), so a batch SendGrid retries is counted once, and
  suppression acts on the rows that were new.
* **Human or machine**: opens and clicks go through :func:`.classify.classify`, the function the
  pixel and the redirect use; ``sg_machine_open`` is one of its rules, and clicks on several
  links of one message within a second (in the batch or already stored) are ``burst_clicks``.
  Leads are never made here: a click SendGrid saw passed through our redirect, which decides.
* **Suppression** (:mod:`.suppression`): ``bounce`` (hard), ``dropped`` for a bounced, invalid,
  spam-reporting or unsubscribed address, ``spamreport``, ``unsubscribe`` and
  ``group_unsubscribe``; ``blocked`` (soft) once an address has ``soft_bounce_limit`` of them
  since its last ``delivered``. ``group_resubscribe`` is stored, and changes nothing: consent
  comes back through our own pages, not a provider's flag.
* **Privacy**: the address becomes the subscriber id (or a suppression row); the event's
  ``email``, ``ip`` and ``useragent`` are removed from the raw data kept in ``events.data``;
  the IP is stored per ``NEWSLETTER_IP_STORAGE``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from sqlalchemy import bindparam, func, or_, select

from newsletter.db.models import CampaignLink, Delivery, Event, SendLog, Subscriber, UTCDateTime, utcnow
from newsletter.emailaddr import trusted_email
from newsletter.tracking.classify import Classifier, default_classifier
from newsletter.tracking.events import USER_AGENT_MAX, mark_burst
from newsletter.tracking.options import DEFAULT_OPTIONS, TrackingOptions
from newsletter.tracking.privacy import store_ip
from newsletter.tracking.sql import (
    ByIds,
    Db,
    EventRow,
    delivery_owners,
    delivery_times,
    insert_event_rows,
    json_bytes_without_nul,
)
from newsletter.tracking.suppression import SuppressionRequest, suppress

KNOWN_TYPES = ("processed", "dropped", "delivered", "deferred", "bounce", "blocked", "open", "click",
               "spamreport", "unsubscribe", "group_unsubscribe", "group_resubscribe")
#: Event type → suppression reason (``dropped`` and ``blocked`` are decided below).
SUPPRESSING_TYPES = {"bounce": "bounced", "spamreport": "complained", "unsubscribe": "unsubscribed",
                     "group_unsubscribe": "unsubscribed"}
#: SendGrid's ``reason`` of a ``dropped`` event (lowercased) → suppression reason. Other drops
#: ("Invalid SMTPAPI header", "Spam Content", quota) are about the message, not the address.
DROP_REASONS = {"bounced address": "bounced", "invalid": "invalid", "invalid address": "invalid",
                "spam reporting address": "complained", "unsubscribed address": "unsubscribed"}
#: Never kept in ``events.data``: personal, and stored in their own form elsewhere.
PERSONAL_KEYS = ("email", "ip", "useragent")
MAX_EVENTS = 10_000  # per post; SendGrid posts well under this
TYPE_MAX = 30
KEY_MAX = 200
_CLICK_PATH = re.compile(r"/c/[^/?#\s]+/(\d{1,6})(?:[/?#]|$)")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


_EVENTS = Event.__table__
_STORED_CLICKS = ByIds(lambda in_: select(_EVENTS.c.id, _EVENTS.c.delivery_id, _EVENTS.c.link_id, _EVENTS.c.data,
                                          _EVENTS.c.occurred_at)
                       .where(in_(_EVENTS.c.delivery_id, "ids"), _EVENTS.c.type == "click",
                              _EVENTS.c.occurred_at >= bindparam("since", type_=UTCDateTime()),
                              _EVENTS.c.occurred_at <= bindparam("until", type_=UTCDateTime())))


class MalformedBatch(ValueError):
    """The body is not a JSON array of objects; nothing of it is stored (HTTP 400)."""


def parse_batch(body: bytes, *, max_events: int = MAX_EVENTS) -> list[dict[str, Any]]:
    """The events of one post, or :class:`MalformedBatch` for the whole body.

    NUL characters are taken out of every string and key first (the ``\\u0000`` escape, on the
    raw text): PostgreSQL cannot store them, and an event's text reaches many places (the
    address looked up, the suppression's note, the raw JSON kept), so one stray NUL would fail
    the whole post, every retry. :func:`.sql.insert_event_rows` strips them again for other callers.
    A body refused for half a surrogate pair gets a second try (:func:`_loads_repaired`)."""
    body = json_bytes_without_nul(body)
    try:
        data = _loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = _loads_repaired(body)
    if not isinstance(data, list):
        raise MalformedBatch("expected a JSON array of events")
    if len(data) > max_events:
        raise MalformedBatch(f"more than {max_events} events in one post")
    if not all(isinstance(item, dict) for item in data):
        raise MalformedBatch("every item of the array must be an event object")
    return data


#: A surrogate escape (``\ud800``-``\udfff``): a pair is one character, half of one is none.
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATES = re.compile(rb"(?<!\\)((?:\\\\)*)(\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
                         rb"|\\u[dD][89a-fA-F][0-9a-fA-F]{2})")


def _loads_repaired(body: bytes) -> Any:
    """A second try for a body the parser refused, with half a surrogate pair (``\\ud800``
    alone: JSON's grammar allows it, orjson and PostgreSQL do not) made U+FFFD; a pair (an
    emoji) is kept. Only here, after a refusal: the rewrite costs ~50 ms on a batch full of
    emoji, the search for one nothing on the usual batch that parses at once."""
    if _SURROGATE_HINT.search(body):
        repaired = _SURROGATES.sub(lambda m: m.group(1) + (m.group(2) if len(m.group(2)) == 12 else rb"\ufffd"),
                                   body)
        try:
            return _loads(repaired)
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass
    raise MalformedBatch("body is not valid JSON")


def _loads(body: bytes) -> Any:
    """orjson: parses a 1000-event batch several times faster than the standard library."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc)) from None


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
        return {"received": self.received, "stored": self.stored, "duplicates": self.duplicates,
                "unknown_message": self.unknown_message, "machine": self.machine, "suppressed": self.suppressed}


class _Event:
    """One event of a post, normalised (:func:`_normalise`); filled in by the steps that follow."""

    __slots__ = ("raw", "key", "type", "occurred_at", "delivery_id", "email", "campaign_id", "subscriber_id",
                 "sent_at", "link_id", "link_kind", "is_machine", "reason", "burst")

    def __init__(self, raw: dict[str, Any], key: str, type_: str, occurred_at: datetime, delivery_id: int | None,
                 email: str | None) -> None:
        self.raw = raw
        self.key = key
        self.type = type_
        self.occurred_at = occurred_at
        self.delivery_id = delivery_id
        self.email = email
        self.campaign_id: int | None = None
        self.subscriber_id: int | None = None
        self.sent_at: datetime | None = None
        self.link_id: int | None = None
        self.link_kind: str | None = None
        self.is_machine = False
        self.reason: str | None = None
        self.burst = False

    @property
    def message_prefix(self) -> str | None:
        """The ``X-Message-Id`` of the request the message went out in (needed only when the
        event carries no ``delivery_id`` of ours)."""
        message_id = self.raw.get("sg_message_id")
        return _clean(message_id.split(".", 1)[0])[:200] if isinstance(message_id, str) and message_id else None


_DIGITS = re.compile(r"[0-9]{1,18}")


def _int_arg(raw: dict[str, Any], name: str) -> int | None:
    value = raw.get(name)
    if value is None:
        for holder in ("custom_args", "unique_args"):
            args = raw.get(holder)
            if isinstance(args, dict) and name in args:
                value = args[name]
                break
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        return None
    return number if 0 < number < 2**62 else None


def _occurred_at(raw: dict[str, Any], now: datetime, latest: datetime) -> datetime:
    value = raw.get("timestamp")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        try:
            when = datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, ValueError, OSError):
            return now
        # A provider clock far in the future would sort the event after everything else.
        return when if when <= latest else now
    return now


def _clean(text: str) -> str:
    """Text columns cannot hold NUL on PostgreSQL: a post carrying one is stored, not refused."""
    return text.replace("\x00", "") if "\x00" in text else text


def _type(raw: dict[str, Any]) -> str:
    event = raw.get("event")
    if not isinstance(event, str) or not _clean(event).strip():
        return "unknown"
    event = _clean(event).strip().lower()[:TYPE_MAX]
    if event == "bounce" and str(raw.get("type", "")).lower() == "blocked":
        return "blocked"
    return event


#: The usual ``event`` values, exactly as SendGrid spells them: taken as they are.
_PLAIN_TYPES = {name: name for name in KNOWN_TYPES if name not in ("bounce", "blocked")}


def _key(raw: dict[str, Any]) -> str:
    sg_id = raw.get("sg_event_id")
    if isinstance(sg_id, str) and sg_id and len(sg_id) <= KEY_MAX - 3 and "\x00" not in sg_id:
        return "sg:" + sg_id
    # No (usable) id: the event's own content names it, so a retried batch still counts once.
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "sg:h:" + hashlib.sha256(canonical).hexdigest()


_TIMES: dict[int, datetime] = {}
_TIMES_KEPT = 65536


def _normalise(raw_events: Sequence[dict[str, Any]], now: datetime) -> list[_Event]:
    """Every distinct event of a post (the same event twice in one post: once), in order.

    One pass, the common shapes taken straight (a plain ``sg_event_id``, a known ``event``, an
    integer ``timestamp``, our ``delivery_id`` as digits) and the rest through the careful
    helpers above: this loop runs for every event SendGrid sends.
    """
    latest = now + timedelta(days=1)
    times = _TIMES  # whole seconds repeat within a post and across posts: converted once each
    if len(times) > _TIMES_KEPT:
        times.clear()
    seen: set[str] = set()
    events: list[_Event] = []
    append = events.append
    for raw in raw_events:
        sg_id = raw.get("sg_event_id")
        if sg_id.__class__ is str and 0 < len(sg_id) <= KEY_MAX - 3 and "\x00" not in sg_id:
            key = "sg:" + sg_id
        else:
            key = _key(raw)
        if key in seen:
            continue
        seen.add(key)
        event = raw.get("event")
        kind = _PLAIN_TYPES.get(event) if event.__class__ is str else None  # type: ignore[call-overload]
        if kind is None:
            kind = _type(raw)
        stamp = raw.get("timestamp")
        when = times.get(stamp) if stamp.__class__ is int else None  # type: ignore[call-overload]
        if when is None or when > latest:
            when = _occurred_at(raw, now, latest)
            if stamp.__class__ is int and when is not now:
                times[stamp] = when  # type: ignore[index]
        delivery = raw.get("delivery_id")
        if delivery.__class__ is str and delivery.isascii() and delivery.isdigit() and len(delivery) <= 18:
            delivery_id: int | None = int(delivery) or None  # type: ignore[arg-type]
        else:
            delivery_id = _int_arg(raw, "delivery_id")
        email = raw.get("email")
        append(_Event(raw, key, kind, when, delivery_id, trusted_email(_clean(email)) if isinstance(email, str) else None))
    return events


def _chunks(items: Sequence[Any], size: int = 5000):  # type: ignore[no-untyped-def]
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _by_message_id(session: Db, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int, int, datetime | None]]:
    """(message id, address) → (delivery, campaign, subscriber, sent at), for events without our
    custom_args. The send log says which campaign sent a message id (the ledger does not index
    its own ``message_id``); the address names the subscriber; the ledger's unique (subscriber,
    campaign) key names the row, whose message id must be the event's."""
    out: dict[tuple[str, str], tuple[int, int, int, datetime | None]] = {}
    for chunk in _chunks(sorted(wanted), 1000):
        campaigns = dict(session.execute(select(SendLog.message_id, SendLog.campaign_id)
                                         .where(SendLog.message_id.in_({m for m, _ in chunk}))).all())
        emails = {email for message_id, email in chunk if message_id in campaigns}
        if not emails:
            continue
        rows = session.execute(
            select(Delivery.message_id, Subscriber.email, Delivery.id, Delivery.campaign_id,
                   Delivery.subscriber_id, Delivery.sent_at)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email.in_(emails), Delivery.campaign_id.in_(set(campaigns.values()))))
        for message_id, email, did, cid, sid, sent_at in rows:
            if (message_id, email) in wanted:
                out[(message_id, email)] = (did, cid, sid, sent_at)
    return out


def _resolve_deliveries(session: Db, events: list[_Event]) -> None:
    ids = {e.delivery_id for e in events if e.delivery_id is not None}
    timed = {e.delivery_id for e in events if e.delivery_id is not None and e.type == "click"}
    found: dict[int, tuple[int, int, datetime | None]] = {}
    if ids:  # the send time only where a click needs it: reading times back is the slow part
        for did, (cid, sid) in delivery_owners(session, ids - timed).items():
            found[did] = (cid, sid, None)
        found.update(delivery_times(session, timed))
    # Fallback: X-Message-Id (one per request) + the recipient's address.
    wanted = {(e.message_prefix, e.email) for e in events
              if e.delivery_id not in found and e.message_prefix and e.email}
    by_message: dict[tuple[str, str], int] = {}
    for pair, (did, cid, sid, sent_at) in _by_message_id(session, wanted).items():
        by_message[pair] = did
        found[did] = (cid, sid, sent_at)
    for e in events:
        if e.delivery_id not in found:
            e.delivery_id = by_message.get((e.message_prefix or "", e.email or ""))
        if e.delivery_id is not None:
            e.campaign_id, e.subscriber_id, e.sent_at = found[e.delivery_id]


_LINKS = CampaignLink.__table__
_CAMPAIGN_LINKS = ByIds(lambda in_: select(_LINKS.c.id, _LINKS.c.campaign_id, _LINKS.c.position, _LINKS.c.kind)
                        .where(in_(_LINKS.c.campaign_id, "ids")))


def _resolve_links(session: Db, clicks: list[_Event]) -> None:
    wanted: dict[tuple[int, int], list[_Event]] = {}
    for e in clicks:
        url = e.raw.get("url")
        match = _CLICK_PATH.search(url) if isinstance(url, str) and e.campaign_id is not None else None
        if match:
            wanted.setdefault((e.campaign_id, int(match.group(1))), []).append(e)  # type: ignore[arg-type]
    if not wanted:
        return
    for lid, cid, position, kind in _CAMPAIGN_LINKS.execute(session, ids={c for c, _ in wanted}):
        for e in wanted.get((cid, position), ()):
            e.link_id, e.link_kind = lid, kind


def _find_bursts(session: Db, clicks: list[_Event], classifier: Classifier) -> list[int]:
    """Mark the batch's clicks that are part of a burst; return ids of stored clicks to re-mark."""
    groups: dict[Any, list[_Event]] = {}
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
        for eid, did, link_id, url, occurred_at in _STORED_CLICKS.execute(session, ids=known, since=earliest,
                                                                         until=latest):
            stored.setdefault(did, []).append((eid, link_id or _url_of(url), occurred_at))
    again: list[int] = []
    for group, events in groups.items():
        if len(events) + len(stored.get(group, [])) < classifier.burst_links:  # type: ignore[arg-type]
            continue
        old = stored.get(group, [])  # type: ignore[arg-type]
        points = [((e.occurred_at - _EPOCH).total_seconds(), e.link_id or e.raw.get("url")) for e in events]
        points += [((t - _EPOCH).total_seconds(), link) for _, link, t in old]
        for i in classifier.find_bursts(points):
            if i < len(events):
                events[i].burst = True
            else:
                again.append(old[i - len(events)][0])
    return again


def _url_of(data: Any) -> Any:
    return data.get("url") if isinstance(data, dict) else None


def _classify(events: list[_Event], classifier: Classifier) -> None:
    judge = classifier.classify
    for e in events:
        kind = e.type
        if kind != "open" and kind != "click":
            continue
        raw = e.raw
        agent = raw.get("useragent")
        ip = raw.get("ip")
        seconds = (e.occurred_at - e.sent_at).total_seconds() if kind == "click" and e.sent_at else None
        verdict = judge(kind=kind, user_agent=agent if isinstance(agent, str) else None,  # type: ignore[arg-type]
                        ip=ip if isinstance(ip, str) else None, method="GET", seconds_since_sent=seconds,
                        link_kind=e.link_kind, burst=e.burst, sg_machine_open=raw.get("sg_machine_open") is True)
        e.is_machine, e.reason = verdict.is_machine, verdict.reason


def _rows(events: list[_Event], options: TrackingOptions) -> list[EventRow]:
    """The ``events`` rows (:data:`~.sql.EventRow`): the raw event is kept as ``data`` without
    the address, the IP and the user agent, which are stored in their own form or not at all."""
    storage, hash_key = options.ip_storage, options.ip_hash_key
    agents: dict[str, str | None] = {}  # a post carries few distinct user agents
    rows: list[EventRow] = []
    append = rows.append
    for e in events:
        data = e.raw.copy()  # without PERSONAL_KEYS:
        ip = data.pop("ip", None)
        agent = data.pop("useragent", None)
        data.pop("email", None)
        if agent is not None:
            if isinstance(agent, str):
                clipped = agents.get(agent, "")
                if clipped == "":
                    clipped = agents[agent] = _clean(agent).strip()[:USER_AGENT_MAX] or None
                agent = clipped
            else:
                agent = None
        append((e.key, e.type, "sendgrid", e.campaign_id, e.delivery_id, e.subscriber_id, e.link_id, e.is_machine,
                e.reason, e.occurred_at, store_ip(ip, storage, hash_key) if isinstance(ip, str) else None, agent,
                data))
    # In ledger order: each row's foreign-key checks and index entries then land next to the
    # previous row's (the ledger is built in subscriber order), which costs the store about a
    # fifth less than a post's random order (bench/RESULTS.md, section 4).
    rows.sort(key=_ledger_order)
    return rows


def _ledger_order(row: EventRow) -> int:
    return row[4] if row[4] is not None else 1 << 62  # events without a delivery last


def _suppression_requests(session: Db, new: list[_Event], options: TrackingOptions) -> list[SuppressionRequest]:
    requests: list[SuppressionRequest] = []
    for e in new:
        if e.type not in _MAY_SUPPRESS:
            continue
        reason = SUPPRESSING_TYPES.get(e.type)
        if e.type == "dropped":
            drop = e.raw.get("reason")
            reason = DROP_REASONS.get(drop.strip().lower()) if isinstance(drop, str) else None
        if reason:
            detail = e.raw.get("reason") or e.raw.get("status") or e.type
            note = _clean(f"sendgrid {e.type}: {detail}")[:500]
            requests.append(SuppressionRequest(reason, e.subscriber_id, e.email, note))
    soft = sorted({e.subscriber_id for e in new if e.type == "blocked" and e.subscriber_id is not None})
    for chunk in _chunks(soft):
        counts = _soft_bounce_counts(session, chunk)
        for sid, count in counts.items():
            if count >= options.soft_bounce_limit:
                requests.append(SuppressionRequest("bounced", sid, None, f"sendgrid: {count} soft bounces"))
    return requests


_MAY_SUPPRESS = frozenset(SUPPRESSING_TYPES) | {"dropped"}


def _soft_bounce_counts(session: Db, subscriber_ids: list[int]) -> dict[int, int]:
    """Soft bounces per subscriber since their last ``delivered`` event (or ever)."""
    delivered = Event.__table__.alias("delivered")
    last = (select(func.max(delivered.c.occurred_at))
            .where(delivered.c.subscriber_id == Event.subscriber_id, delivered.c.type == "delivered")
            .scalar_subquery())
    rows = session.execute(
        select(Event.subscriber_id, func.count())
        .where(Event.subscriber_id.in_(subscriber_ids), Event.type == "blocked",
               or_(last.is_(None), last < Event.occurred_at))
        .group_by(Event.subscriber_id)).all()
    return {sid: n for sid, n in rows}


@dataclass
class PreparedBatch:
    """A post read, mapped and classified, ready to store (:func:`prepare_batch`)."""

    received: int
    events: list[_Event]
    rows: list[EventRow]
    burst_ids: list[int]  # stored clicks found inside a burst, to re-mark
    now: datetime


def prepare_batch(session: Db, raw_events: Sequence[dict[str, Any]], *,
                  now: datetime | None = None, options: TrackingOptions = DEFAULT_OPTIONS,
                  classifier: Classifier | None = None) -> PreparedBatch:
    """Everything but the writes: normalise, map to ledger rows and links, find bursts, classify.

    Reads only, so on SQLite the web app runs it outside the write lock while another post is
    being stored (:func:`store_batch` is the part that writes)."""
    now = now or utcnow()
    classifier = classifier or default_classifier()
    events = _normalise(raw_events, now)
    again: list[int] = []
    if events:
        _resolve_deliveries(session, events)
        clicks = [e for e in events if e.type == "click"]
        if clicks:
            _resolve_links(session, clicks)
            again = _find_bursts(session, clicks, classifier)
        _classify(events, classifier)
    return PreparedBatch(len(raw_events), events, _rows(events, options), again, now)


def store_batch(session: Db, batch: PreparedBatch, *,
                options: TrackingOptions = DEFAULT_OPTIONS) -> IngestResult:
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
        received=batch.received, stored=len(new),
        unknown_message=sum(1 for e in new if e.delivery_id is None),
        machine=sum(1 for e in new if e.is_machine), suppressed=added)


def ingest_events(session: Db, raw_events: Sequence[dict[str, Any]], *,
                  now: datetime | None = None, options: TrackingOptions = DEFAULT_OPTIONS,
                  classifier: Classifier | None = None) -> IngestResult:
    """Store a batch (already verified and parsed) in the session's transaction: :func:`prepare_batch`
    then :func:`store_batch`. See the module docstring. The caller commits."""
    prepared = prepare_batch(session, raw_events, now=now, options=options, classifier=classifier)
    return store_batch(session, prepared, options=options)
