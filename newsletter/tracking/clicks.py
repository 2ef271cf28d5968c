"""Clicks: the redirect's events, the bursts of a scanner, and the lead a human CTA click makes.

Clicks come in batches (:func:`record_clicks`; :func:`record_click` is a batch of one), like
opens: three reads (deliveries, links unless the recorder's :class:`LinkCache` has them, the
messages' clicks around that time, for bursts), one multi-row insert, then the rare follow-ups.

The CTA ("Connect today"):

* human click, no doubt → a ``lead`` event and the subscriber's lead created or warmed;
* machine click → the click event only (the redirect still happens: a scanner is harmless);
* human click *with* a doubt (:data:`.classify.DOUBTS`) → the click event, no lead yet, and
  ``needs_confirmation``: the web shows a one-step "continue to booking" page whose signed link
  lands in :func:`.cta.confirm_cta`, which stores a ``cta_confirm`` event and then counts the lead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select, update

from newsletter.db.models import utcnow
from newsletter.leads import take_back_click_lead, warm_lead_from_click
from newsletter.tracking.classify import Classifier, Verdict, default_classifier
from newsletter.tracking.events import (
    EVENTS,
    RequestInfo,
    StoredForms,
    UnknownDelivery,
    UnknownLink,
    insert_event,
    new_keys,
)
from newsletter.tracking.options import DEFAULT_OPTIONS, TrackingOptions
from newsletter.tracking.queries import (
    CAMPAIGN_LINKS,
    LINKS_AT,
    RECENT_CLICKS,
    Db,
    EventRow,
    delivery_times,
    insert_event_rows,
)


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


class Target(NamedTuple):  # a tuple: made once per click on the redirect's hot path
    campaign_id: int
    subscriber_id: int
    sent_at: datetime | None
    link_id: int | None
    url: str | None
    kind: str | None


def find_target(db: Db, delivery_id: int, position: int) -> Target:
    """The delivery and its campaign's link ``position``."""
    ledger = delivery_times(db, {delivery_id}).get(delivery_id)
    if ledger is None:
        raise UnknownDelivery(f"no delivery {delivery_id}")
    link = db.execute(LINKS_AT, {"campaigns": [ledger[0]], "positions": [position]}).first()
    return Target(ledger[0], ledger[1], ledger[2], *(link[2:] if link else (None, None, None)))


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
    clicks = db.execute(
        select(EVENTS.c.delivery_id, EVENTS.c.link_id, EVENTS.c.occurred_at, EVENTS.c.subscriber_id).where(
            EVENTS.c.id.in_(human)
        )
    ).all()
    for delivery_id, link_id, occurred_at, subscriber_id in clicks:
        lead_event = db.scalar(
            select(EVENTS.c.id)
            .where(
                EVENTS.c.delivery_id == delivery_id,
                EVENTS.c.type == "lead",
                EVENTS.c.link_id == link_id,
                EVENTS.c.occurred_at == occurred_at,
                EVENTS.c.is_machine.is_(False),
            )
            .limit(1)
        )
        if lead_event is None or subscriber_id is None:
            continue
        db.execute(
            update(EVENTS).where(EVENTS.c.id == lead_event).values(is_machine=True, machine_reason="burst_clicks")
        )
        take_back_click_lead(db, subscriber_id, now)


def record_clicks(
    db: Db,
    items: Sequence[tuple[int, int, RequestInfo, datetime]],
    *,
    options: TrackingOptions = DEFAULT_OPTIONS,
    classifier: Classifier | None = None,
    link_cache: LinkCache | None = None,
) -> list[ClickResult | UnknownDelivery | UnknownLink]:
    """Store many clicks (``(delivery_id, position, request, when)``): three reads (deliveries,
    links unless ``link_cache`` has them, the messages' clicks around that time, for bursts), one
    multi-row insert, then the rare follow-ups (leads, re-marking a burst's earlier clicks). Each
    item's answer is a :class:`ClickResult` or the :class:`UnknownDelivery` /
    :class:`UnknownLink` it would raise."""
    classifier = classifier or default_classifier()
    if not items:
        return []
    found = delivery_times(db, {d for d, _, _, _ in items})
    campaigns = {found[d][0] for d, _, _, _ in items if d in found}
    links, known = link_cache.get(campaigns) if link_cache is not None else ({}, set())
    # A position the cache does not know: read that campaign again (a link registered since, in
    # tests; production registers a campaign's links once, when it is created).
    stale = {
        found[d][0] for d, p, _, _ in items if d in found and found[d][0] in known and (found[d][0], p) not in links
    }
    wanted = (campaigns - known) | stale
    if wanted:
        if link_cache is not None:  # every link of those campaigns, for the next clicks too
            link_rows = CAMPAIGN_LINKS.execute(db, ids=wanted)
        else:
            link_rows = db.execute(
                LINKS_AT, {"campaigns": sorted(wanted), "positions": sorted({p for _, p, _, _ in items})}
            )
        fetched: dict[tuple[int, int], tuple[int, str, str]] = {}
        for cid, position, lid, url, kind in link_rows:
            fetched[(cid, position)] = (lid, url, kind)
        links = {**links, **fetched}
        if link_cache is not None:
            link_cache.put(wanted, fetched)
    out: list[ClickResult | UnknownDelivery | UnknownLink] = []
    targets: list[tuple[int, Target] | None] = []
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
            targets.append((delivery_id, Target(ledger[0], ledger[1], ledger[2], *link)))
            out.append(None)  # type: ignore[arg-type]  # filled below

    # Bursts: this batch's clicks and the stored ones around them, per message.
    window = timedelta(seconds=classifier.burst_seconds)
    valid = [i for i, t in enumerate(targets) if t is not None]
    in_burst: set[int] = set()
    again: list[int] = []
    if valid:
        times = [items[i][3] for i in valid]
        stored: dict[int, list[tuple[int, int | None, datetime]]] = {}
        for eid, did, lid, when in RECENT_CLICKS.execute(
            db, ids={items[i][0] for i in valid}, since=min(times) - window, until=max(times) + window
        ):
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
    keys = new_keys(len(valid))
    facts = StoredForms(options)
    for key, i in zip(keys, valid, strict=True):
        delivery_id, position, request, now = items[i]
        target = targets[i][1]  # type: ignore[index]
        verdict = classifier.classify(
            kind="click",
            user_agent=request.user_agent,
            ip=request.ip,
            method=request.method,
            seconds_since_sent=_seconds(now, target.sent_at),
            link_kind=target.kind,
            accept_language=request.accept_language,
            burst=i in in_burst,
        )
        verdicts[i] = verdict
        data: dict[str, Any] = {"position": position}
        if verdict.doubt:
            data["doubt"] = verdict.doubt
        rows.append(
            (
                key,
                "click",
                "tracking",
                target.campaign_id,
                delivery_id,
                target.subscriber_id,
                target.link_id,
                verdict.is_machine,
                verdict.reason,
                now,
                facts.ip(request.ip),
                facts.agent(request.user_agent),
                data,
            )
        )
    insert_event_rows(db, rows)
    if again:
        mark_burst(db, again, max(items[i][3] for i in valid))
    for i in valid:
        delivery_id, position, request, now = items[i]
        target, verdict = targets[i][1], verdicts[i]  # type: ignore[index]
        is_cta = target.kind == "cta"
        lead_id = None
        if is_cta and not verdict.is_machine and not verdict.doubt:
            lead_id = count_lead(db, target, delivery_id, now, options, via="click")
        out[i] = ClickResult(
            url=target.url or "",
            link_kind=target.kind or "",
            lead_id=lead_id,
            is_machine=verdict.is_machine,
            reason=verdict.reason,
            doubt=verdict.doubt,
            needs_confirmation=is_cta and verdict.uncertain,
            position=position,
        )
    return out


def record_click(
    session: Db,
    delivery_id: int,
    position: int,
    request: RequestInfo,
    now: datetime | None = None,
    *,
    options: TrackingOptions = DEFAULT_OPTIONS,
    classifier: Classifier | None = None,
) -> ClickResult:
    """Store one click on the campaign's link number ``position`` and say where to redirect.

    Raises :class:`UnknownLink` when the campaign has no such link (the web answers 404: a click
    never redirects anywhere that was not registered) and :class:`UnknownDelivery`. A human click
    on a ``cta`` link creates the subscriber's lead or warms it; a machine click never does; a
    doubted one asks for confirmation first (module docstring).
    """
    [result] = record_clicks(
        session, [(delivery_id, position, request, now or utcnow())], options=options, classifier=classifier
    )
    if isinstance(result, LookupError):
        raise result
    return result


def count_lead(db: Db, target: Target, delivery_id: int, now: datetime, options: TrackingOptions, *, via: str) -> int:
    """The lead, and a ``lead`` event so reports count CTA → lead per campaign."""
    lead_id = warm_lead_from_click(db, target.subscriber_id, target.campaign_id, target.link_id, now)
    insert_event(
        db,
        type_="lead",
        campaign_id=target.campaign_id,
        delivery_id=delivery_id,
        subscriber_id=target.subscriber_id,
        verdict=Verdict(False),
        request=None,
        now=now,
        options=options,
        link_id=target.link_id,
        data={"via": via},
    )
    return lead_id
