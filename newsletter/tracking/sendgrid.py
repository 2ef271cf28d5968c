"""SendGrid's Event Webhook, its side only: a post's body → normalised events, and the tables
that say what each SendGrid event means. Pure: no SQL, no HTTP (the web room verifies the
signature first, :mod:`.signature`; :mod:`.webhook` stores what this module makes).

:func:`parse_batch` turns the raw body into a list of event objects (or refuses it whole);
:func:`normalise` makes each a :class:`SendGridEvent`; :func:`event_rows` says what of it is
kept; :func:`suppression_of` says which events take an address off the list.

Mapping, one small table each (SendGrid's quirks in one place):

* **Ledger row**: our ``custom_args`` (``delivery_id``, sent in every personalization) come back
  as top-level keys of each event. Without them, ``sg_message_id`` up to its first dot is the
  ``X-Message-Id`` of one request of up to 1000 recipients: the send log names its campaign and
  the event's address picks the recipient (:attr:`SendGridEvent.message_prefix`, looked up by
  :mod:`.webhook`). Neither found → stored without a delivery.
* **Type**: SendGrid's ``event`` as is (``processed``, ``dropped``, ``delivered``, ``deferred``,
  ``bounce``, ``open``, ``click``, ``spamreport``, ``unsubscribe``, ``group_unsubscribe``,
  ``group_resubscribe``), except a ``bounce`` of ``type: blocked`` (and an ``event: blocked``),
  stored as ``blocked``: a soft bounce. Unknown types are stored as they come, raw data kept.
* **Once**: ``event_key = "sg:" + sg_event_id`` (an event without a usable id: a hash of its
  content), so a batch SendGrid retries is counted once.
* **Suppression** (:func:`suppression_of`): ``bounce`` (hard), ``dropped`` for a bounced,
  invalid, spam-reporting or unsubscribed address, ``spamreport``, ``unsubscribe`` and
  ``group_unsubscribe``; ``blocked`` (soft) counts towards ``soft_bounce_limit`` (:mod:`.webhook`).
  ``group_resubscribe`` is stored, and changes nothing: consent comes back through our own
  pages, not a provider's flag.
* **Privacy** (:func:`event_rows`): the event's ``email``, ``ip`` and ``useragent`` are removed
  from the raw data kept in ``events.data``; the IP is stored per ``NEWSLETTER_IP_STORAGE``.
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

from newsletter.emailaddr import trusted_email
from newsletter.tracking.events import USER_AGENT_MAX
from newsletter.tracking.jsontext import json_bytes_without_nul
from newsletter.tracking.options import TrackingOptions
from newsletter.tracking.privacy import store_ip
from newsletter.tracking.queries import EventRow

KNOWN_TYPES = (
    "processed",
    "dropped",
    "delivered",
    "deferred",
    "bounce",
    "blocked",
    "open",
    "click",
    "spamreport",
    "unsubscribe",
    "group_unsubscribe",
    "group_resubscribe",
)
#: Event type → suppression reason (``dropped`` and ``blocked`` are decided below).
SUPPRESSING_TYPES = {
    "bounce": "bounced",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}
#: SendGrid's ``reason`` of a ``dropped`` event (lowercased) → suppression reason. Other drops
#: ("Invalid SMTPAPI header", "Spam Content", quota) are about the message, not the address.
DROP_REASONS = {
    "bounced address": "bounced",
    "invalid": "invalid",
    "invalid address": "invalid",
    "spam reporting address": "complained",
    "unsubscribed address": "unsubscribed",
}
#: Never kept in ``events.data``: personal, and stored in their own form elsewhere.
PERSONAL_KEYS = ("email", "ip", "useragent")
MAX_EVENTS = 10_000  # per post; SendGrid posts well under this
TYPE_MAX = 30
KEY_MAX = 200
#: Our redirect's path: ``/c/<token>/<link position>``.
_CLICK_PATH = re.compile(r"/c/[^/?#\s]+/(\d{1,6})(?:[/?#]|$)")


class MalformedBatch(ValueError):
    """The body is not a JSON array of objects; nothing of it is stored (HTTP 400)."""


def parse_batch(body: bytes, *, max_events: int = MAX_EVENTS) -> list[dict[str, Any]]:
    """The events of one post, or :class:`MalformedBatch` for the whole body.

    NUL characters are taken out of every string and key first (the ``\\u0000`` escape, on the
    raw text): PostgreSQL cannot store them, and an event's text reaches many places (the
    address looked up, the suppression's note, the raw JSON kept), so one stray NUL would fail
    the whole post, every retry. :func:`.queries.insert_event_rows` strips them again for other callers.
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
_SURROGATES = re.compile(
    rb"(?<!\\)((?:\\\\)*)(\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)


def _loads_repaired(body: bytes) -> Any:
    """A second try for a body the parser refused, with half a surrogate pair (``\\ud800``
    alone: JSON's grammar allows it, orjson and PostgreSQL do not) made U+FFFD; a pair (an
    emoji) is kept. Only here, after a refusal: the rewrite costs ~50 ms on a batch full of
    emoji, the search for one nothing on the usual batch that parses at once."""
    if _SURROGATE_HINT.search(body):
        repaired = _SURROGATES.sub(lambda m: m.group(1) + (m.group(2) if len(m.group(2)) == 12 else rb"\ufffd"), body)
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


@dataclass(slots=True, eq=False)
class SendGridEvent:
    """One event of a post, normalised (:func:`normalise`); :mod:`.webhook` fills in the rest
    (ledger row, link, verdict) and reads SendGrid's raw fields only through the properties below."""

    raw: dict[str, Any]
    key: str
    type: str
    occurred_at: datetime
    delivery_id: int | None
    email: str | None
    campaign_id: int | None = None
    subscriber_id: int | None = None
    sent_at: datetime | None = None
    link_id: int | None = None
    link_kind: str | None = None
    is_machine: bool = False
    reason: str | None = None
    burst: bool = False

    @property
    def message_prefix(self) -> str | None:
        """The ``X-Message-Id`` of the request the message went out in (needed only when the
        event carries no ``delivery_id`` of ours)."""
        message_id = self.raw.get("sg_message_id")
        return _clean(message_id.split(".", 1)[0])[:200] if isinstance(message_id, str) and message_id else None

    @property
    def url(self) -> Any:
        """The clicked URL as SendGrid sent it (any JSON value: a burst compares them as they are)."""
        return self.raw.get("url")

    @property
    def link_position(self) -> int | None:
        """The position of our registered link a click went through, from our redirect's path."""
        url = self.raw.get("url")
        match = _CLICK_PATH.search(url) if isinstance(url, str) else None
        return int(match.group(1)) if match else None

    @property
    def user_agent(self) -> str | None:
        agent = self.raw.get("useragent")
        return agent if isinstance(agent, str) else None

    @property
    def ip(self) -> str | None:
        ip = self.raw.get("ip")
        return ip if isinstance(ip, str) else None

    @property
    def machine_open(self) -> bool:
        """SendGrid's own word that a machine opened the message (``sg_machine_open``)."""
        return self.raw.get("sg_machine_open") is True


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


def normalise(raw_events: Sequence[dict[str, Any]], now: datetime) -> list[SendGridEvent]:
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
    events: list[SendGridEvent] = []
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
        kind = _PLAIN_TYPES.get(event) if event.__class__ is str else None
        if kind is None:
            kind = _type(raw)
        stamp = raw.get("timestamp")
        when = times.get(stamp) if stamp.__class__ is int else None
        if when is None or when > latest:
            when = _occurred_at(raw, now, latest)
            if stamp.__class__ is int and when is not now:
                times[stamp] = when
        delivery = raw.get("delivery_id")
        if delivery.__class__ is str and delivery.isascii() and delivery.isdigit() and len(delivery) <= 18:
            delivery_id: int | None = int(delivery) or None
        else:
            delivery_id = _int_arg(raw, "delivery_id")
        email = raw.get("email")
        append(
            SendGridEvent(
                raw, key, kind, when, delivery_id, trusted_email(_clean(email)) if isinstance(email, str) else None
            )
        )
    return events


def event_rows(events: list[SendGridEvent], options: TrackingOptions) -> list[EventRow]:
    """The ``events`` rows (:data:`~.queries.EventRow`): the raw event is kept as ``data`` without
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
        append(
            (
                e.key,
                e.type,
                "sendgrid",
                e.campaign_id,
                e.delivery_id,
                e.subscriber_id,
                e.link_id,
                e.is_machine,
                e.reason,
                e.occurred_at,
                store_ip(ip, storage, hash_key) if isinstance(ip, str) else None,
                agent,
                data,
            )
        )
    # In ledger order: each row's foreign-key checks and index entries then land next to the
    # previous row's (the ledger is built in subscriber order), which costs the store about a
    # fifth less than a post's random order (bench/RESULTS.md, section 4).
    rows.sort(key=_ledger_order)
    return rows


def _ledger_order(row: EventRow) -> int:
    return row[4] if row[4] is not None else 1 << 62  # events without a delivery last


def stored_url(data: Any) -> Any:
    """The clicked URL of a stored SendGrid click (its kept raw data), for bursts."""
    return data.get("url") if isinstance(data, dict) else None


_MAY_SUPPRESS = frozenset(SUPPRESSING_TYPES) | {"dropped"}


def suppression_of(event: SendGridEvent) -> tuple[str, str] | None:
    """``(reason, note)`` when this event takes its address off the list by itself; ``None``
    otherwise (``blocked`` counts towards a limit instead: :mod:`.webhook`)."""
    if event.type not in _MAY_SUPPRESS:
        return None
    raw = event.raw
    reason = SUPPRESSING_TYPES.get(event.type)
    if event.type == "dropped":
        drop = raw.get("reason")
        reason = DROP_REASONS.get(drop.strip().lower()) if isinstance(drop, str) else None
    if not reason:
        return None
    detail = raw.get("reason") or raw.get("status") or event.type
    return reason, _clean(f"sendgrid {event.type}: {detail}")[:500]
