"""Opens, clicks, the CTA's confirmation and unsubscribes: what the tracking routes record.

Plain functions over a SQLAlchemy ``Session`` or ``Connection``; the caller owns the
transaction. Nothing here knows about HTTP beyond :class:`RequestInfo`.

Each call stores ``events`` rows with our own ``event_key`` (:func:`_new_key`), the
human/machine verdict (:mod:`.classify`), the stored form of the address (:mod:`.privacy`, per
:class:`~.options.TrackingOptions`) and the user agent.

Opens and clicks come in batches (:func:`record_opens`, :func:`record_clicks`; the single forms
are batches of one): the web app's :class:`~.recorder.Recorder` hands over everything that
arrived together, and a batch is one read of the ledger rows and one multi-row insert, Core
statements on the table, no ORM objects (the pixel is the hottest path of the product: every
image load of every message).

The CTA ("Connect today"):

* human click, no doubt → a ``lead`` event and the subscriber's lead created or warmed;
* machine click → the click event only (the redirect still happens: a scanner is harmless);
* human click *with* a doubt (:data:`.classify.DOUBTS`) → the click event, no lead yet, and
  ``needs_confirmation``: the web shows a one-step "continue to booking" page whose signed link
  lands in :func:`confirm_cta`, which stores a ``cta_confirm`` event and then counts the lead.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from newsletter.audiences import add_suppressions
from newsletter.db.models import (
    CampaignLink,
    Delivery,
    Event,
    Subscriber,
    UTCDateTime,
    utcnow,
)
from newsletter.leads import take_back_click_lead, warm_lead_from_click
from newsletter.tracking.classify import Classifier, Verdict, default_classifier
from newsletter.tracking.options import DEFAULT_OPTIONS, TrackingOptions
from newsletter.tracking.privacy import store_ip
from newsletter.tracking.sql import (
    ByIds,
    Db,
    EventRow,
    delivery_owners,
    delivery_times,
    insert_event_rows,
)

USER_AGENT_MAX = 500
UNSUBSCRIBE_SOURCES = ("one_click", "link", "preferences")
#: Statuses an unsubscribe moves to "unsubscribed". Bounced, complained and erased subscribers
#: are already suppressed; overwriting their status would lose why.
_UNSUBSCRIBABLE = ("active", "pending")


class UnknownDelivery(LookupError):
    """A validly signed token whose ledger row no longer exists."""


class UnknownLink(LookupError):
    """No link with that position is registered for the delivery's campaign."""


@dataclass(frozen=True)
class RequestInfo:
    """What the tracking functions need of a request. ``ip`` is the full address; only what
    ``NEWSLETTER_IP_STORAGE`` allows is ever stored. ``accept_language`` is the header's value,
    ``""`` when the request had none, ``None`` when not known (library callers)."""

    ip: str | None = None
    user_agent: str | None = None
    method: str = "GET"
    accept_language: str | None = None


@dataclass(frozen=True)
class ClickResult:
    url: str  # the registered URL: the only place a click may redirect to
    link_kind: str
    lead_id: int | None  # the lead created or warmed by a human CTA click
    is_machine: bool
    reason: str | None = None
    doubt: str | None = None
    #: A human but doubted click on the CTA: show the "continue to booking" page, no lead yet.
    needs_confirmation: bool = False
    position: int = 0


@dataclass(frozen=True)
class UnsubscribeResult:
    subscriber_id: int
    changed: bool  # False when the subscriber was already unsubscribed and suppressed
    suppressed_deliveries: int  # queued deliveries taken out of the ledger by this call


def _clip_agent(user_agent: str | None) -> str | None:
    agent = (user_agent or "").strip()
    return agent[:USER_AGENT_MAX] or None


def _ip(request: RequestInfo | None, options: TrackingOptions) -> str | None:
    return store_ip(request.ip, options.ip_storage, options.ip_hash_key) if request else None


def _new_key() -> str:
    """32 hex digits: microseconds since the epoch, then 72 random bits. Time first, so new keys
    land at the end of the unique index instead of anywhere in it: on a table of a few hundred
    thousand events that makes a commit of opens about three times cheaper (bench/RESULTS.md)."""
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(9)}"


def _new_keys(count: int) -> list[str]:
    """``count`` keys as :func:`_new_key` makes them, one time and one call for random bytes for
    the lot (a batch of the web app's recorder)."""
    stamp = f"{time.time_ns() // 1000:014x}"
    random = secrets.token_hex(9 * count)
    return [stamp + random[i:i + 18] for i in range(0, 18 * count, 18)]


class _Stored:
    """The stored forms of a batch's addresses and user agents, each distinct value worked out
    once (the requests of a batch often share them: one proxy, one mail app)."""

    def __init__(self, options: TrackingOptions) -> None:
        self.options = options
        self.ips: dict[str | None, str | None] = {}
        self.agents: dict[str | None, str | None] = {}

    def ip(self, ip: str | None) -> str | None:
        try:
            return self.ips[ip]
        except KeyError:
            found = self.ips[ip] = store_ip(ip, self.options.ip_storage, self.options.ip_hash_key)
            return found

    def agent(self, agent: str | None) -> str | None:
        try:
            return self.agents[agent]
        except KeyError:
            found = self.agents[agent] = _clip_agent(agent)
            return found


# Every function below takes a Session or a Connection (``Db``): the web app's writer uses a Connection.

EVENTS = Event.__table__  # Core statements on the table: no ORM bulk machinery on the hot paths


def _row(*, type_: str, campaign_id: int | None, delivery_id: int | None, subscriber_id: int | None,
         verdict: Verdict, request: RequestInfo | None, now: datetime, options: TrackingOptions,
         link_id: int | None = None, data: dict[str, Any] | None = None) -> dict[str, Any]:
    row = dict(
        event_key=_new_key(), type=type_, source="tracking", campaign_id=campaign_id, delivery_id=delivery_id,
        subscriber_id=subscriber_id, link_id=link_id, is_machine=verdict.is_machine, machine_reason=verdict.reason,
        occurred_at=now, ip_prefix=_ip(request, options),
        user_agent=_clip_agent(request.user_agent) if request else None,
    )
    if data is not None:  # left out rather than None: SQL NULL, not the JSON text 'null'
        row["data"] = data
    return row


def _insert_event(db: Db, **fields: Any) -> None:
    db.execute(insert(EVENTS), _row(**fields))


# --- reads shared by opens and clicks: built once, compiled once (SQLAlchemy caches them) ------

_LINKS = select(CampaignLink.campaign_id, CampaignLink.position, CampaignLink.id, CampaignLink.url,
                CampaignLink.kind).where(CampaignLink.campaign_id.in_(bindparam("campaigns", expanding=True)),
                                         CampaignLink.position.in_(bindparam("positions", expanding=True)))
_CAMPAIGN_LINKS = ByIds(lambda in_: select(CampaignLink.campaign_id, CampaignLink.position, CampaignLink.id,
                                           CampaignLink.url, CampaignLink.kind).where(in_(CampaignLink.campaign_id, "ids")))
_RECENT_CLICKS = ByIds(lambda in_: select(EVENTS.c.id, EVENTS.c.delivery_id, EVENTS.c.link_id, EVENTS.c.occurred_at)
                       .where(in_(EVENTS.c.delivery_id, "ids"), EVENTS.c.type == "click",
                              EVENTS.c.occurred_at >= bindparam("since", type_=UTCDateTime()),
                              EVENTS.c.occurred_at <= bindparam("until", type_=UTCDateTime())))


def _deliveries(db: Db, ids: set[int]) -> dict[int, tuple[int, int, datetime | None]]:
    return delivery_times(db, ids)


# --- opens -----------------------------------------------------------------------------------


def record_opens(db: Db, items: Sequence[tuple[int, RequestInfo, datetime]], *,
                 options: TrackingOptions = DEFAULT_OPTIONS, classifier: Classifier | None = None) -> list[Verdict | None]:
    """Store many opens (``(delivery_id, request, when)``) with one read and one multi-row insert;
    returns each verdict, ``None`` where the delivery does not exist (nothing stored for it).
    Opens are not timed: a pre-fetch and a reader look the same at any delay."""
    classifier = classifier or default_classifier()
    found = delivery_owners(db, {d for d, _, _ in items})
    rows: list[EventRow] = []
    out: list[Verdict | None] = []
    keys = _new_keys(len(items))
    facts = _Stored(options)
    verdicts: dict[tuple[str | None, str | None, str], Verdict] = {}  # an open's verdict is its request's
    for i, (delivery_id, request, now) in enumerate(items):
        ledger = found.get(delivery_id)
        if ledger is None:
            out.append(None)
            continue
        asked = (request.user_agent, request.ip, request.method)
        verdict = verdicts.get(asked)
        if verdict is None:
            verdict = verdicts[asked] = classifier.classify(kind="open", user_agent=request.user_agent, ip=request.ip,
                                                            method=request.method, seconds_since_sent=None)
        rows.append((keys[i], "open", "tracking", ledger[0], delivery_id, ledger[1], None, verdict.is_machine,
                     verdict.reason, now, facts.ip(request.ip), facts.agent(request.user_agent), None))
        out.append(verdict)
    insert_event_rows(db, rows)  # one statement for the whole batch
    return out


def record_open(session: Db, delivery_id: int, request: RequestInfo, now: datetime | None = None, *,
                options: TrackingOptions = DEFAULT_OPTIONS, classifier: Classifier | None = None) -> Verdict:
    """Store one open for ``delivery_id``; returns the verdict. Raises :class:`UnknownDelivery`."""
    [verdict] = record_opens(session, [(delivery_id, request, now or utcnow())], options=options,
                             classifier=classifier)
    if verdict is None:
        raise UnknownDelivery(f"no delivery {delivery_id}")
    return verdict


# --- clicks ----------------------------------------------------------------------------------


class _Target(NamedTuple):  # a tuple: made once per click on the redirect's hot path
    campaign_id: int
    subscriber_id: int
    sent_at: datetime | None
    link_id: int | None
    url: str | None
    kind: str | None


def _target(db: Db, delivery_id: int, position: int) -> _Target:
    """The delivery and its campaign's link ``position``."""
    ledger = _deliveries(db, {delivery_id}).get(delivery_id)
    if ledger is None:
        raise UnknownDelivery(f"no delivery {delivery_id}")
    link = db.execute(_LINKS, {"campaigns": [ledger[0]], "positions": [position]}).first()
    return _Target(ledger[0], ledger[1], ledger[2], *(link[2:] if link else (None, None, None)))


def _seconds(now: datetime, then: datetime | None) -> float | None:
    return (now - then).total_seconds() if then else None


class LinkCache:
    """A campaign's registered links, kept for ``ttl`` seconds by one process (the web app's
    recorder). Links are written once, when the campaign is created, and never changed, so
    the redirect needs no read of them per click. Per app, never module-wide: two stores (tests,
    a second app) must never share entries."""

    def __init__(self, ttl: float = 300.0, max_campaigns: int = 1000) -> None:
        self.ttl = ttl
        self.max_campaigns = max_campaigns
        self._entries: dict[int, tuple[float, dict[int, tuple[int, str, str]]]] = {}
        self._lock = threading.Lock()

    def get(self, campaigns: set[int]) -> tuple[dict[tuple[int, int], tuple[int, str, str]], set[int]]:
        """The cached links of ``campaigns`` and which campaigns were found (fresh) in the cache."""
        now = time.monotonic()
        links: dict[tuple[int, int], tuple[int, str, str]] = {}
        known: set[int] = set()
        with self._lock:
            for cid in campaigns:
                entry = self._entries.get(cid)
                if entry is not None and entry[0] >= now:
                    known.add(cid)
                    links.update(((cid, position), link) for position, link in entry[1].items())
        return links, known

    def put(self, campaigns: set[int], links: dict[tuple[int, int], tuple[int, str, str]]) -> None:
        expires = time.monotonic() + self.ttl
        with self._lock:
            if len(self._entries) + len(campaigns) > self.max_campaigns:
                self._entries.clear()
            for cid in campaigns:
                self._entries[cid] = (expires, {p: link for (c, p), link in links.items() if c == cid})


def mark_burst(db: Db, event_ids: list[int], now: datetime) -> None:
    """Earlier clicks found inside a burst become machine (``burst_clicks``); a lead one of them
    created or warmed is taken back (a scanner is no lead)."""
    if not event_ids:
        return
    human = list(db.scalars(select(EVENTS.c.id).where(EVENTS.c.id.in_(event_ids), EVENTS.c.is_machine.is_(False))))
    if not human:
        return
    db.execute(update(EVENTS).where(EVENTS.c.id.in_(human)).values(is_machine=True, machine_reason="burst_clicks"))
    # The lead events written with those clicks: same delivery and link, same instant.
    clicks = db.execute(select(EVENTS.c.delivery_id, EVENTS.c.link_id, EVENTS.c.occurred_at, EVENTS.c.subscriber_id)
                        .where(EVENTS.c.id.in_(human))).all()
    for delivery_id, link_id, occurred_at, subscriber_id in clicks:
        lead_event = db.scalar(
            select(EVENTS.c.id).where(EVENTS.c.delivery_id == delivery_id, EVENTS.c.type == "lead",
                                      EVENTS.c.link_id == link_id, EVENTS.c.occurred_at == occurred_at,
                                      EVENTS.c.is_machine.is_(False)).limit(1))
        if lead_event is None or subscriber_id is None:
            continue
        db.execute(update(EVENTS).where(EVENTS.c.id == lead_event).values(is_machine=True, machine_reason="burst_clicks"))
        take_back_click_lead(db, subscriber_id, now)


def record_clicks(db: Db, items: Sequence[tuple[int, int, RequestInfo, datetime]], *,
                  options: TrackingOptions = DEFAULT_OPTIONS, classifier: Classifier | None = None,
                  link_cache: LinkCache | None = None) -> list[ClickResult | UnknownDelivery | UnknownLink]:
    """Store many clicks (``(delivery_id, position, request, when)``): three reads (deliveries,
    links unless ``link_cache`` has them, the messages' clicks around that time, for bursts), one
    multi-row insert, then the rare follow-ups (leads, re-marking a burst's earlier clicks). Each
    item's answer is a :class:`ClickResult` or the :class:`UnknownDelivery` /
    :class:`UnknownLink` it would raise."""
    classifier = classifier or default_classifier()
    if not items:
        return []
    found = _deliveries(db, {d for d, _, _, _ in items})
    campaigns = {found[d][0] for d, _, _, _ in items if d in found}
    links, known = link_cache.get(campaigns) if link_cache is not None else ({}, set())
    # A position the cache does not know: read that campaign again (a link registered since, in
    # tests; production registers a campaign's links once, when it is created).
    stale = {found[d][0] for d, p, _, _ in items if d in found and found[d][0] in known
             and (found[d][0], p) not in links}
    wanted = (campaigns - known) | stale
    if wanted:
        if link_cache is not None:  # every link of those campaigns, for the next clicks too
            rows = _CAMPAIGN_LINKS.execute(db, ids=wanted)
        else:
            rows = db.execute(_LINKS, {"campaigns": sorted(wanted), "positions": sorted({p for _, p, _, _ in items})})
        fetched: dict[tuple[int, int], tuple[int, str, str]] = {}
        for cid, position, lid, url, kind in rows:
            fetched[(cid, position)] = (lid, url, kind)
        links = {**links, **fetched}
        if link_cache is not None:
            link_cache.put(wanted, fetched)
    out: list[ClickResult | UnknownDelivery | UnknownLink] = []
    targets: list[tuple[int, _Target] | None] = []
    for delivery_id, position, _, _ in items:
        ledger = found.get(delivery_id)
        link = links.get((ledger[0], position)) if ledger else None
        if ledger is None:
            targets.append(None)
            out.append(UnknownDelivery(f"no delivery {delivery_id}"))
        elif link is None:
            targets.append(None)
            out.append(UnknownLink(f"campaign {ledger[0]} has no link {position}"))
        else:
            targets.append((delivery_id, _Target(ledger[0], ledger[1], ledger[2], *link)))
            out.append(None)  # type: ignore[arg-type]  (filled below)

    # Bursts: this batch's clicks and the stored ones around them, per message.
    window = timedelta(seconds=classifier.burst_seconds)
    valid = [i for i, t in enumerate(targets) if t is not None]
    in_burst: set[int] = set()
    again: list[int] = []
    if valid:
        times = [items[i][3] for i in valid]
        stored: dict[int, list[tuple[int, int | None, datetime]]] = {}
        for eid, did, lid, when in _RECENT_CLICKS.execute(db, ids={items[i][0] for i in valid},
                                                          since=min(times) - window, until=max(times) + window):
            stored.setdefault(did, []).append((eid, lid, when))
        by_delivery: dict[int, list[int]] = {}
        for i in valid:
            by_delivery.setdefault(items[i][0], []).append(i)
        for did, members in by_delivery.items():
            old = stored.get(did, [])
            if len(members) + len(old) < classifier.burst_links:
                continue
            base = items[members[0]][3]
            points = [((items[i][3] - base).total_seconds(), targets[i][1].link_id) for i in members]  # type: ignore[index]
            points += [((when - base).total_seconds(), lid) for _, lid, when in old]
            for k in classifier.find_bursts(points):
                if k < len(members):
                    in_burst.add(members[k])
                else:
                    again.append(old[k - len(members)][0])

    rows: list[EventRow] = []
    verdicts: dict[int, Verdict] = {}
    keys = _new_keys(len(valid))
    facts = _Stored(options)
    for key, i in zip(keys, valid):
        delivery_id, position, request, now = items[i]
        target = targets[i][1]  # type: ignore[index]
        verdict = classifier.classify(
            kind="click", user_agent=request.user_agent, ip=request.ip, method=request.method,
            seconds_since_sent=_seconds(now, target.sent_at), link_kind=target.kind,
            accept_language=request.accept_language, burst=i in in_burst)
        verdicts[i] = verdict
        data: dict[str, Any] = {"position": position}
        if verdict.doubt:
            data["doubt"] = verdict.doubt
        rows.append((key, "click", "tracking", target.campaign_id, delivery_id, target.subscriber_id, target.link_id,
                     verdict.is_machine, verdict.reason, now, facts.ip(request.ip), facts.agent(request.user_agent),
                     data))
    insert_event_rows(db, rows)
    if again:
        mark_burst(db, again, max(items[i][3] for i in valid))
    for i in valid:
        delivery_id, position, request, now = items[i]
        target, verdict = targets[i][1], verdicts[i]  # type: ignore[index]
        is_cta = target.kind == "cta"
        lead_id = None
        if is_cta and not verdict.is_machine and not verdict.doubt:
            lead_id = _count_lead(db, target, delivery_id, now, options, via="click")
        out[i] = ClickResult(url=target.url or "", link_kind=target.kind or "", lead_id=lead_id,
                             is_machine=verdict.is_machine, reason=verdict.reason, doubt=verdict.doubt,
                             needs_confirmation=is_cta and verdict.uncertain, position=position)
    return out


def record_click(session: Db, delivery_id: int, position: int, request: RequestInfo,
                 now: datetime | None = None, *, options: TrackingOptions = DEFAULT_OPTIONS,
                 classifier: Classifier | None = None) -> ClickResult:
    """Store one click on the campaign's link number ``position`` and say where to redirect.

    Raises :class:`UnknownLink` when the campaign has no such link (the web answers 404: a click
    never redirects anywhere that was not registered) and :class:`UnknownDelivery`. A human click
    on a ``cta`` link creates the subscriber's lead or warms it; a machine click never does; a
    doubted one asks for confirmation first (module docstring).
    """
    [result] = record_clicks(session, [(delivery_id, position, request, now or utcnow())], options=options,
                             classifier=classifier)
    if isinstance(result, LookupError):
        raise result
    return result


def confirm_cta(session: Db, delivery_id: int, position: int, request: RequestInfo, *, issued_at: datetime,
                now: datetime | None = None, options: TrackingOptions = DEFAULT_OPTIONS,
                classifier: Classifier | None = None) -> ClickResult:
    """The person pressed "continue to booking" on the page shown for a doubted CTA click.

    Stores a ``cta_confirm`` event and, when the request is a person, counts the lead. Machine
    checks: the usual request rules (HEAD, no or a scanner's user agent, scanner networks) and
    ``too_fast_confirm`` (sooner than ``cta_confirm_min_seconds`` after the page was served). A
    link older than ``cta_confirm_max_age_days`` still answers with the booking URL but stores
    nothing. Raises :class:`UnknownDelivery`, and :class:`UnknownLink` unless link ``position``
    is the campaign's CTA.
    """
    now = now or utcnow()
    target = _target(session, delivery_id, position)
    if target.link_id is None or target.url is None or target.kind != "cta":
        raise UnknownLink(f"campaign {target.campaign_id} has no CTA link {position}")
    elapsed = (now - issued_at).total_seconds()
    if elapsed > options.cta_confirm_max_age_days * 86400:
        return ClickResult(url=target.url, link_kind="cta", lead_id=None, is_machine=False, position=position)
    verdict = (classifier or default_classifier()).classify(
        kind="click", user_agent=request.user_agent, ip=request.ip, method=request.method,
        seconds_since_sent=None, link_kind="cta")
    if not verdict.is_machine and elapsed < options.cta_confirm_min_seconds:
        verdict = Verdict(True, "too_fast_confirm")
    verdict = Verdict(verdict.is_machine, verdict.reason)  # the person answered: no doubt left
    _insert_event(session, type_="cta_confirm", campaign_id=target.campaign_id, delivery_id=delivery_id,
                  subscriber_id=target.subscriber_id, verdict=verdict, request=request, now=now, options=options,
                  link_id=target.link_id, data={"position": position})
    lead_id = None
    if not verdict.is_machine:
        lead_id = _count_lead(session, target, delivery_id, now, options, via="confirm")
    return ClickResult(url=target.url, link_kind="cta", lead_id=lead_id, is_machine=verdict.is_machine,
                       reason=verdict.reason, position=position)


def _count_lead(db: Db, target: _Target, delivery_id: int, now: datetime, options: TrackingOptions, *,
                via: str) -> int:
    """The lead, and a ``lead`` event so reports count CTA → lead per campaign."""
    lead_id = warm_lead_from_click(db, target.subscriber_id, target.campaign_id, target.link_id, now)
    _insert_event(db, type_="lead", campaign_id=target.campaign_id, delivery_id=delivery_id,
                  subscriber_id=target.subscriber_id, verdict=Verdict(False), request=None, now=now, options=options,
                  link_id=target.link_id, data={"via": via})
    return lead_id


# --- unsubscribe -----------------------------------------------------------------------------


def unsubscribe(session: Session, delivery_id: int, *, source: Literal["one_click", "link", "preferences"],
                request: RequestInfo | None = None, now: datetime | None = None,
                options: TrackingOptions = DEFAULT_OPTIONS) -> UnsubscribeResult:
    """Unsubscribe the delivery's subscriber; safe to repeat (mail providers retry one-click POSTs).

    Sets the status (active or pending → unsubscribed, with ``status_changed_at``), adds a
    suppression if the address has none, marks the subscriber's still-queued deliveries of every
    campaign ``suppressed`` and stores one ``unsubscribe`` event. A repeat finds nothing to
    change and stores nothing. Each step is a conditional statement, so two simultaneous
    requests cannot both count.
    """
    if source not in UNSUBSCRIBE_SOURCES:
        raise ValueError(f"source must be one of {UNSUBSCRIBE_SOURCES}, not {source!r}")
    now = now or utcnow()
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise UnknownDelivery(f"no delivery {delivery_id}")
    subscriber = session.get(Subscriber, delivery.subscriber_id)
    if subscriber is None:  # pragma: no cover - deleting a subscriber takes its ledger rows with it
        raise UnknownDelivery(f"delivery {delivery_id} has no subscriber")
    if subscriber.status == "erased":  # nothing personal left to act on
        return UnsubscribeResult(subscriber.id, changed=False, suppressed_deliveries=0)

    status_changed = session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber.id, Subscriber.status.in_(_UNSUBSCRIBABLE))
        .values(status="unsubscribed", status_changed_at=now, updated_at=now)
    ).rowcount == 1

    suppression_added = add_suppressions(
        session, [{"email": subscriber.email, "reason": "unsubscribed", "source": source, "created_at": now}]) > 0

    suppressed = session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber.id, Delivery.status == "queued")
        .values(status="suppressed", error="unsubscribed", updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount

    changed = status_changed or suppression_added
    if changed:
        _insert_event(session, type_="unsubscribe", campaign_id=delivery.campaign_id, delivery_id=delivery.id,
                      subscriber_id=delivery.subscriber_id, verdict=Verdict(False, None), request=request, now=now,
                      options=options, data={"source": source})
    return UnsubscribeResult(subscriber.id, changed=changed, suppressed_deliveries=suppressed)
