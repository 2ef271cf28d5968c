"""A store of known events for the report tests, counted by hand in the comments.

Times are fixed (November 2026, ISO weeks 46–48, UTC) so week buckets and the 72-hour chart
have exact expected values; rows go straight in through the models, the way the tracking and
webhook code store them (no mocks).

Subscribers (tags)           created      status now
  s1 (anxiety, ketamine)     2026-10-01   active
  s2 (anxiety)               2026-10-01   active
  s3 (ketamine)              2026-10-01   active
  s4 (depression)            2026-10-01   active
  s5 (ketamine)              2026-11-10   unsubscribed 2026-11-20 02:00 (W47)
  s6                         2026-11-11   bounced      2026-11-16 17:10 (W47)
  s7                         2026-11-17   active
  s8                         2026-11-18   active
  s9                         2026-11-19   unsubscribed 2026-11-24 (W48)
  s10                        2026-11-24   complained   2026-11-25 09:00 (W48)

Campaign A (newsletter, segment "all", started Mon 2026-11-16 17:00 = T0, week 47); links
1 article, 2 cta "Connect today", 3 read_more. Ledger: s1–s6 sent, s7 failed, s8 suppressed.
  provider: processed s1–s6; delivered s1–s5; s2 deferred twice first; s6 bounce; s4 spamreport
  s1: human open T0+0:30 and T0+5:00; human click link 1 T0+0:40; human click CTA T0+0:45 → lead
  s2: machine open (apple_mpp) T0+0:10; human open T0+1:30; human click CTA T0+2:00 → lead
  s3: machine open T0+0:05; scanner clicks on link 1 and the CTA T0+0:06
  s4: human click link 3 T0+25:00 (no open: images off)
  s5: human open T0+80:00 (after the 72 hours); unsubscribe T0+81:00
Campaign B (newsletter, segment "ketamine-readers", started Mon 2026-11-23 17:00, week 48).
Ledger s1–s4 sent, no provider events (delivery unknown → the funnel's basis is "sent").
  s3: human open, human CTA click → lead; s4: human click link 1; s1: a lead event judged
  machine (burst), which counts for nothing.
Campaign N (nurture, started 2026-11-20): s1 sent, delivered, human open.
Campaign D: a draft, never sent.

Leads: L1 s1 (campaign A) new → booked 2026-11-18 → client 2026-11-20; L2 s2 (A) new → booked
2026-11-19 → lost 2026-11-24; L3 s3 (B) new, created 2026-11-23 18:00.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine

from newsletter.db import models, session_scope

UTC = timezone.utc
T0 = datetime(2026, 11, 16, 17, 0, tzinfo=UTC)
TB = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
)


def at(base: datetime, hours: float = 0, minutes: float = 0) -> datetime:
    return base + timedelta(hours=hours, minutes=minutes)


@dataclass
class World:
    subscribers: dict[str, int] = field(default_factory=dict)
    campaigns: dict[str, int] = field(default_factory=dict)
    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)
    links: dict[tuple[str, int], int] = field(default_factory=dict)
    leads: dict[str, int] = field(default_factory=dict)


_keys = itertools.count(1)


def add_event(
    session,
    world: World,
    campaign: str,
    who: str,
    type_: str,
    when: datetime,
    *,  # type: ignore[no-untyped-def]
    link: int | None = None,
    machine: bool = False,
    reason: str | None = None,
    source: str = "tracking",
) -> None:
    session.add(
        models.Event(
            event_key=f"report-test-{next(_keys)}-{type_}",
            type=type_,
            source=source,
            campaign_id=world.campaigns[campaign],
            delivery_id=world.deliveries.get((campaign, who)),
            subscriber_id=world.subscribers[who],
            link_id=world.links[(campaign, link)] if link else None,
            is_machine=machine,
            machine_reason=reason,
            occurred_at=when,
            user_agent=None if machine else BROWSER,
        )
    )


def _subscribers(session, world: World) -> None:  # type: ignore[no-untyped-def]
    made = {
        "s1": ("2026-10-01", "active", None, ("anxiety", "ketamine")),
        "s2": ("2026-10-01", "active", None, ("anxiety",)),
        "s3": ("2026-10-01", "active", None, ("ketamine",)),
        "s4": ("2026-10-01", "active", None, ("depression",)),
        "s5": ("2026-11-10", "unsubscribed", at(T0, 81), ("ketamine",)),
        "s6": ("2026-11-11", "bounced", at(T0, 0, 10), ()),
        "s7": ("2026-11-17", "active", None, ()),
        "s8": ("2026-11-18", "active", None, ()),
        "s9": ("2026-11-19", "unsubscribed", datetime(2026, 11, 24, tzinfo=UTC), ()),
        "s10": ("2026-11-24", "complained", datetime(2026, 11, 25, 9, tzinfo=UTC), ()),
    }
    for name, (created, status, changed, tags) in made.items():
        when = datetime.fromisoformat(created).replace(hour=12, tzinfo=UTC)
        row = models.Subscriber(
            email=f"{name}@example.com",
            first_name=name.upper(),
            status=status,
            attributes={},
            created_at=when,
            updated_at=when,
            status_changed_at=changed,
        )
        row.tags = [models.SubscriberTag(tag=t) for t in tags]
        session.add(row)
        session.flush()
        world.subscribers[name] = row.id


def _campaign(
    session,
    world: World,
    name: str,
    *,
    kind: str = "newsletter",
    segment: str = "all",  # type: ignore[no-untyped-def]
    started: datetime | None,
    status: str = "sent",
) -> None:
    row = models.Campaign(
        kind=kind,
        name=f"Campaign {name}",
        subject=f"Subject {name}",
        segment=segment,
        template="newsletter.mjml.j2",
        status=status,
        html="<p>x</p>",
        text="x",
        started_at=started,
        created_at=started or T0,
        updated_at=started or T0,
    )
    session.add(row)
    session.flush()
    world.campaigns[name] = row.id
    for position, kind_, label in (
        (1, "article", "Read the article"),
        (2, "cta", "Connect today"),
        (3, "read_more", "Read more"),
    ):
        link = models.CampaignLink(
            campaign_id=row.id, position=position, url=f"https://example.org/{name}/{position}", label=label, kind=kind_
        )
        session.add(link)
        session.flush()
        world.links[(name, position)] = link.id


def _ledger(session, world: World, campaign: str, rows: dict[str, str], sent_at: datetime) -> None:  # type: ignore[no-untyped-def]
    for who, status in rows.items():
        row = models.Delivery(
            campaign_id=world.campaigns[campaign],
            subscriber_id=world.subscribers[who],
            status=status,
            sent_at=sent_at if status == "sent" else None,
            created_at=sent_at,
        )
        session.add(row)
        session.flush()
        world.deliveries[(campaign, who)] = row.id


def _lead(
    session,
    world: World,
    who: str,
    campaign: str,
    status: str,
    created: datetime,  # type: ignore[no-untyped-def]
    moves: list[tuple[str, datetime]],
) -> None:
    lead = models.Lead(
        subscriber_id=world.subscribers[who],
        campaign_id=world.campaigns[campaign],
        link_id=world.links[(campaign, 2)],
        status=status,
        created_at=created,
        updated_at=created,
    )
    session.add(lead)
    session.flush()
    world.leads[who] = lead.id
    session.add(
        models.LeadStatusChange(
            lead_id=lead.id, from_status=None, to_status="new", changed_by="system:cta", changed_at=created
        )
    )
    previous = "new"
    for to, when in moves:
        session.add(
            models.LeadStatusChange(
                lead_id=lead.id, from_status=previous, to_status=to, changed_by="staff", changed_at=when
            )
        )
        previous = to


def build_report_world(engine: Engine) -> World:
    world = World()
    with session_scope(engine) as s:
        _subscribers(s, world)
        _campaign(s, world, "A", started=T0)
        _campaign(s, world, "B", segment="ketamine-readers", started=TB)
        _campaign(s, world, "N", kind="nurture", segment="nurture", started=datetime(2026, 11, 20, 9, tzinfo=UTC))
        _campaign(s, world, "D", started=None, status="draft")
        _ledger(
            s,
            world,
            "A",
            {
                "s1": "sent",
                "s2": "sent",
                "s3": "sent",
                "s4": "sent",
                "s5": "sent",
                "s6": "sent",
                "s7": "failed",
                "s8": "suppressed",
            },
            at(T0, 0, 1),
        )
        _ledger(s, world, "B", {"s1": "sent", "s2": "sent", "s3": "sent", "s4": "sent"}, at(TB, 0, 1))
        _ledger(s, world, "N", {"s1": "sent"}, datetime(2026, 11, 20, 9, 1, tzinfo=UTC))
        ev = lambda *a, **k: add_event(s, world, *a, **k)  # noqa: E731
        for who in ("s1", "s2", "s3", "s4", "s5", "s6"):
            ev("A", who, "processed", at(T0, 0, 2), source="sendgrid")
        ev("A", "s2", "deferred", at(T0, 0, 3), source="sendgrid")
        ev("A", "s2", "deferred", at(T0, 0, 4), source="sendgrid")
        for who in ("s1", "s2", "s3", "s4", "s5"):
            ev("A", who, "delivered", at(T0, 0, 5), source="sendgrid")
        ev("A", "s6", "bounce", at(T0, 0, 6), source="sendgrid")
        ev("A", "s4", "spamreport", at(T0, 30), source="sendgrid")
        ev("A", "s1", "open", at(T0, 0, 30))
        ev("A", "s1", "open", at(T0, 5))
        ev("A", "s1", "click", at(T0, 0, 40), link=1)
        ev("A", "s1", "click", at(T0, 0, 45), link=2)
        ev("A", "s1", "lead", at(T0, 0, 45), link=2)
        ev("A", "s2", "open", at(T0, 0, 10), machine=True, reason="apple_mpp")
        ev("A", "s2", "open", at(T0, 1, 30))
        ev("A", "s2", "click", at(T0, 2), link=2)
        ev("A", "s2", "lead", at(T0, 2), link=2)
        ev("A", "s3", "open", at(T0, 0, 5), machine=True, reason="apple_mpp")
        ev("A", "s3", "click", at(T0, 0, 6), link=1, machine=True, reason="link_scanner")
        ev("A", "s3", "click", at(T0, 0, 6), link=2, machine=True, reason="link_scanner")
        ev("A", "s4", "click", at(T0, 25), link=3)
        ev("A", "s5", "open", at(T0, 80))
        ev("A", "s5", "unsubscribe", at(T0, 81))
        ev("B", "s3", "open", at(TB, 1))
        ev("B", "s3", "click", at(TB, 1, 5), link=2)
        ev("B", "s3", "lead", at(TB, 1, 5), link=2)
        ev("B", "s4", "click", at(TB, 3), link=1)
        ev("B", "s1", "lead", at(TB, 4), link=2, machine=True, reason="burst_clicks")
        ev("N", "s1", "delivered", datetime(2026, 11, 20, 9, 2, tzinfo=UTC), source="sendgrid")
        ev("N", "s1", "open", datetime(2026, 11, 20, 10, tzinfo=UTC))
        _lead(
            s,
            world,
            "s1",
            "A",
            "client",
            at(T0, 0, 45),
            [("booked", datetime(2026, 11, 18, tzinfo=UTC)), ("client", datetime(2026, 11, 20, tzinfo=UTC))],
        )
        _lead(
            s,
            world,
            "s2",
            "A",
            "lost",
            at(T0, 2),
            [("booked", datetime(2026, 11, 19, tzinfo=UTC)), ("lost", datetime(2026, 11, 24, tzinfo=UTC))],
        )
        _lead(s, world, "s3", "B", "new", at(TB, 1, 5), [])
    return world


# =============================================================================== a random store

TAGS = ("anxiety", "depression", "ketamine", "ptsd", "family")


def build_random_world(
    engine: Engine,
    subscribers: int,
    seed: int,
    *,
    start: datetime = T0,
    ledger: tuple[int, ...] = (90, 3, 3, 2, 2),
    campaigns: int = 3,
) -> World:
    """A bigger store of random events with realistic rates (and awkward cases: events exactly on
    hour boundaries and at 72 hours, doubted clicks, burst-machine leads, failed and suppressed
    rows, campaigns without delivery reports). Returns its names like :func:`build_report_world`."""
    import random

    from sqlalchemy import insert

    rnd = random.Random(seed)
    world = World()
    with session_scope(engine) as s:
        ids = list(
            s.scalars(
                insert(models.Subscriber).returning(models.Subscriber.id),
                [
                    {
                        "email": f"r{seed}-{k}@example.com",
                        "first_name": "R",
                        "status": "active",
                        "attributes": {},
                        "created_at": start - timedelta(days=rnd.randrange(0, 60)),
                        "updated_at": start,
                    }
                    for k in range(subscribers)
                ],
            )
        )
        world.subscribers = {f"r{k}": i for k, i in enumerate(ids)}
        tags = [{"subscriber_id": i, "tag": t} for i in ids for t in TAGS if rnd.random() < 0.3]
        if tags:
            s.execute(insert(models.SubscriberTag), tags)
        for k in range(campaigns):  # weekly; B has no delivery reports
            name, offset, provider = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[k], 7 * k, k != 1
            _campaign(s, world, name, started=start + timedelta(days=offset), segment=f"seg-{name}")
            cid, when = world.campaigns[name], start + timedelta(days=offset)
            appeal = 1.0 if k < 3 else 0.6 + 0.8 * rnd.random()  # later newsletters click more or less
            statuses = rnd.choices(["sent", "failed", "suppressed", "ambiguous", "queued"], ledger, k=len(ids))
            rows = list(
                s.scalars(
                    insert(models.Delivery).returning(models.Delivery.id),
                    [
                        {
                            "campaign_id": cid,
                            "subscriber_id": i,
                            "status": st,
                            "sent_at": when if st == "sent" else None,
                            "created_at": when,
                        }
                        for i, st in zip(ids, statuses, strict=True)
                    ],
                )
            )
            events = []
            for k, (sid, did, status) in enumerate(zip(ids, rows, statuses, strict=True)):
                world.deliveries[(name, f"r{k}")] = did
                if status == "sent":
                    events += _random_events(rnd, cid, did, sid, when, provider, world.links, name, appeal)
            for n, e in enumerate(events):
                e["event_key"] = f"rnd-{seed}-{cid}-{n}"
            if events:
                s.execute(insert(models.Event), events)
        _random_leads(s, rnd, world)
    return world


def _hour_mark(rnd, when: datetime) -> datetime:  # type: ignore[no-untyped-def]
    """Mostly random within ~90 hours; sometimes exactly on an hour (the bucket edges), or at 72 h."""
    r = rnd.random()
    if r < 0.1:
        return when + timedelta(hours=rnd.randrange(0, 75))
    if r < 0.12:
        return when + timedelta(hours=72)
    return when + timedelta(seconds=rnd.random() ** 2 * 90 * 3600)


def _random_events(
    rnd,
    cid: int,
    did: int,
    sid: int,
    when: datetime,
    provider: bool,  # type: ignore[no-untyped-def]
    links: dict,
    name: str,
    appeal: float = 1.0,
) -> list[dict]:
    out = []

    def add(type_: str, at: datetime, *, machine: bool = False, link: int | None = None, data=None) -> None:  # type: ignore[no-untyped-def]
        out.append(
            {
                "type": type_,
                "source": "tracking",
                "campaign_id": cid,
                "delivery_id": did,
                "subscriber_id": sid,
                "link_id": links[(name, link)] if link else None,
                "is_machine": machine,
                "machine_reason": ("apple_mpp" if type_ == "open" else "link_scanner") if machine else None,
                "occurred_at": at,
                "data": data,
            }
        )

    if provider:
        add("processed", when)
        r = rnd.random()
        for _ in range(rnd.choice([0, 0, 0, 1, 2])):
            add("deferred", when + timedelta(minutes=1))
        if r < 0.93:
            add("delivered", when + timedelta(minutes=2))
        elif r < 0.96:
            add("bounce", when + timedelta(minutes=2))
        elif r < 0.98:
            add("blocked", when + timedelta(minutes=2))
        else:
            add("dropped", when)
        if rnd.random() < 0.01:
            add("spamreport", when + timedelta(hours=5))
    for _ in range(rnd.choice([0, 0, 0, 1, 1, 2, 3])):
        add("open", _hour_mark(rnd, when))
    if rnd.random() < 0.2:
        add("open", when + timedelta(seconds=rnd.randrange(1, 600)), machine=True)
    for _ in range(rnd.choice([0] * 8 + [1, 2]) if rnd.random() < appeal else 0):
        link = rnd.randrange(1, 4)
        at = _hour_mark(rnd, when)
        doubt = {"doubt": "fast_click"} if rnd.random() < 0.1 else None
        add("click", at, link=link, data=doubt)
        if link == 2 and rnd.random() < 0.9:
            if doubt and rnd.random() < 0.5:
                add("cta_confirm", at + timedelta(seconds=5), link=2)
            add("lead", at, link=2, machine=rnd.random() < 0.1)
    if rnd.random() < 0.05:
        add("click", when + timedelta(seconds=3), machine=True, link=rnd.randrange(1, 4))
    if rnd.random() < 0.01:
        add("unsubscribe", _hour_mark(rnd, when))
    return out


def _random_leads(s, rnd, world: World) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    E = models.Event
    firsts = s.execute(
        select(E.subscriber_id, func_min(E.campaign_id), func_min(E.occurred_at))
        .where(E.type == "lead")
        .group_by(E.subscriber_id)
    ).all()
    for sid, cid, first in firsts:
        status = rnd.choice(models.LEAD_STATUSES)
        lead = models.Lead(subscriber_id=sid, campaign_id=cid, status=status, created_at=first, updated_at=first)
        s.add(lead)
        s.flush()
        path = (
            ["new"]
            + ([rnd.choice(["booked", "contacted"])] if rnd.random() < 0.5 else [])
            + ([status] if status != "new" else [])
        )
        for k, (a, b) in enumerate(zip([None] + path, path, strict=False)):
            if a != b:
                s.add(
                    models.LeadStatusChange(
                        lead_id=lead.id,
                        from_status=a,
                        to_status=b,
                        changed_by="test",
                        changed_at=first + timedelta(days=k),
                    )
                )


def func_min(column):  # type: ignore[no-untyped-def]
    from sqlalchemy import func

    return func.min(column)


# =============================================================================== the report, counted another way


def raw_figures(engine: Engine, campaign_id: int) -> dict:
    """Every figure of ``campaign_report`` computed in Python from the raw rows: a second,
    independent implementation of the definitions in ``newsletter.reports.figures``."""
    from collections import Counter, defaultdict

    from sqlalchemy import select

    with session_scope(engine) as s:
        campaign = s.get(models.Campaign, campaign_id)
        start = campaign.started_at
        ledger = Counter(s.scalars(select(models.Delivery.status).where(models.Delivery.campaign_id == campaign_id)))
        recipients = list(
            s.scalars(select(models.Delivery.subscriber_id).where(models.Delivery.campaign_id == campaign_id))
        )
        sent_ids = set(
            s.scalars(
                select(models.Delivery.subscriber_id).where(
                    models.Delivery.campaign_id == campaign_id, models.Delivery.status == "sent"
                )
            )
        )
        links = {
            link.id: link
            for link in s.scalars(select(models.CampaignLink).where(models.CampaignLink.campaign_id == campaign_id))
        }
        events = [
            (e.type, e.is_machine, e.subscriber_id, e.delivery_id, e.link_id, e.occurred_at, e.machine_reason, e.data)
            for e in s.scalars(select(models.Event).where(models.Event.campaign_id == campaign_id))
        ]
        tags = defaultdict(set)
        for sid, tag in s.execute(select(models.SubscriberTag.subscriber_id, models.SubscriberTag.tag)):
            tags[sid].add(tag)
        leads = {row.subscriber_id: row for row in s.scalars(select(models.Lead))}
        went_booked = {c.lead_id for c in s.scalars(select(models.LeadStatusChange)) if c.to_status == "booked"}
        lead_rows = sum(1 for row in leads.values() if row.campaign_id == campaign_id)
        booked_subs = {sid for sid, row in leads.items() if row.status in ("booked", "client") or row.id in went_booked}

    def people(pred) -> set:  # type: ignore[no-untyped-def]
        return {e[2] for e in events if pred(e)}

    cta_links = {i for i, link in links.items() if link.kind == "cta"}
    human = lambda e: not e[1]  # noqa: E731
    opened = people(lambda e: e[0] in ("open", "click") and human(e))
    clicked = people(lambda e: e[0] == "click" and human(e))
    cta = people(lambda e: e[0] == "click" and human(e) and e[4] in cta_links)
    lead = people(lambda e: e[0] == "lead" and human(e))
    delivered_ids = {e[3] for e in events if e[0] == "delivered"}
    delivered = len(delivered_ids)
    types = Counter(e[0] for e in events)
    base = delivered or ledger["sent"]
    firsts: dict = {}
    for e in events:
        if e[0] in ("open", "click") and start <= e[5] < start + timedelta(hours=72):
            key = (e[0], e[1], e[2])
            firsts[key] = min(firsts.get(key, e[5]), e[5])
    hourly = {f"{k}_{w}": [0] * 72 for k in ("opens", "clicks") for w in ("human", "machine")}
    for (type_, machine, _), at in firsts.items():
        hourly[f"{'opens' if type_ == 'open' else 'clicks'}_{'machine' if machine else 'human'}"][
            (at - start) // timedelta(hours=1)
        ] += 1
    by_tag = {}
    for tag in sorted({t for sid in recipients for t in tags[sid]}):
        group = [sid for sid in recipients if tag in tags[sid]]
        by_tag[tag] = {
            "recipients": len(group),
            "sent": len([g for g in group if g in sent_ids]),
            "opened": len([g for g in group if g in opened]),
            "clicked": len([g for g in group if g in clicked]),
            "cta": len([g for g in group if g in cta]),
            "leads": len([g for g in group if g in lead]),
        }
    reasons = {"opens": Counter(), "clicks": Counter()}
    for e in events:
        if e[1] and e[0] in ("open", "click"):
            reasons["opens" if e[0] == "open" else "clicks"][e[6] or "unknown"] += 1
    return {
        "recipients": sum(ledger.values()),
        "sent": ledger["sent"],
        "failed": ledger["failed"],
        "suppressed": ledger["suppressed"],
        "ambiguous": ledger["ambiguous"],
        "queued": ledger["queued"] + ledger["in_flight"],
        "delivered": types["delivered"],
        "deferred": types["deferred"],
        "bounced": types["bounce"] + types["blocked"],
        "dropped": types["dropped"],
        "complaints": types["spamreport"],
        "opens": {
            "unique_human": len(people(lambda e: e[0] == "open" and human(e))),
            "unique_machine": len(people(lambda e: e[0] == "open" and e[1])),
            "total": types["open"],
        },
        "clicks": {
            "unique": len(clicked),
            "unique_machine": len(people(lambda e: e[0] == "click" and e[1])),
            "total": types["click"],
            "cta_unique": len(cta),
            "uncertain": len(people(lambda e: e[0] == "click" and human(e) and (e[7] or {}).get("doubt"))),
            "cta_confirmed": len(people(lambda e: e[0] == "cta_confirm" and human(e))),
        },
        "machine_reasons": {k: dict(v) for k, v in reasons.items()},
        "provider": {
            "deferred_messages": len({e[3] for e in events if e[0] == "deferred"}),
            "bounced_hard": types["bounce"],
            "bounced_soft": types["blocked"],
            "processed": types["processed"],
        },
        "unsubscribes": len(people(lambda e: e[0] == "unsubscribe")),
        "leads": lead_rows,
        "cta_leads": len(lead),
        "booked": len(lead & booked_subs),
        "cta_machine": len(people(lambda e: e[0] == "click" and e[1] and e[4] in cta_links)),
        "funnel": {
            "basis": "delivered" if delivered or not ledger["sent"] else "sent",
            "recipients": sum(ledger.values()),
            "delivered": base,
            "opened": len(opened),
            "clicked": len(clicked),
            "cta": len(cta),
            "leads": len(lead),
            "booked": len(lead & booked_subs),
        },
        "links": [
            {
                "position": link.position,
                "unique_human": len(people(lambda e, i=i: e[0] == "click" and human(e) and e[4] == i)),
                "unique_machine": len(people(lambda e, i=i: e[0] == "click" and e[1] and e[4] == i)),
                "total": sum(1 for e in events if e[0] == "click" and e[4] == i),
            }
            for i, link in sorted(links.items(), key=lambda kv: kv[1].position)
        ],
        "by_tag": by_tag,
        "hourly": hourly,
    }


def _compare(report: dict, raw: dict) -> None:
    """Every figure the raw rows give must be the report's, key by key."""
    for key, value in raw.items():
        if key == "links":
            got = [
                {k: link[k] for k in ("position", "unique_human", "unique_machine", "total")}
                for link in report["links"]
            ]
            assert got == value, key
        elif key == "by_tag":
            got = {
                t["tag"]: {k: t[k] for k in ("recipients", "sent", "opened", "clicked", "cta", "leads")}
                for t in report["by_tag"]
            }
            assert got == value, key
            for t in report["by_tag"]:
                assert t["rates"] == {
                    k: round(t[k] / t["sent"], 4) if t["sent"] else None for k in ("opened", "clicked", "cta", "leads")
                }
        elif key == "hourly":
            assert {k: report["hourly"][k] for k in value} == value, key
        elif key == "provider":
            assert {k: report["provider"][k] for k in value} == value, key
        else:
            assert report[key] == value, key
    f = report["funnel"]
    for stage in ("delivered", "opened", "clicked", "cta", "leads", "booked"):
        base = f["recipients"] if stage == "delivered" else f["delivered"]
        assert report["rates"][stage] == (round(f[stage] / base, 4) if base else None), stage


# =============================================================================== tests: hand-counted figures

import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402

import pytest  # noqa: E402
from rich.console import Console  # noqa: E402

from newsletter.errors import NotFound, UserError  # noqa: E402
from newsletter.reports import campaign_report, to_csv, trends_report  # noqa: E402
from newsletter.reports.render_text import print_report, print_trends  # noqa: E402


@pytest.fixture
def world(engine) -> World:  # type: ignore[no-untyped-def]
    return build_report_world(engine)


def report_of(engine: Engine, world: World, name: str) -> dict:
    with session_scope(engine) as s:
        return campaign_report(s, world.campaigns[name])


def trends_of(engine: Engine, weeks: int = 4, now: datetime = NOW, **kw) -> dict:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return trends_report(s, weeks=weeks, now=now, **kw)


def test_campaign_funnel_matches_the_hand_count(engine, world) -> None:  # type: ignore[no-untyped-def]
    r = report_of(engine, world, "A")
    assert r["funnel"] == {
        "basis": "delivered",
        "recipients": 8,
        "delivered": 5,
        "opened": 4,
        "clicked": 3,
        "cta": 2,
        "leads": 2,
        "booked": 2,
    }
    assert r["rates"] == {
        "delivered": 0.625,
        "opened": 0.8,
        "clicked": 0.6,
        "click_to_open": 0.75,
        "cta": 0.4,
        "leads": 0.4,
        "booked": 0.4,
    }
    assert (r["recipients"], r["sent"], r["failed"], r["suppressed"], r["ambiguous"], r["queued"]) == (8, 6, 1, 1, 0, 0)


def test_people_beside_machines_and_provider_counts(engine, world) -> None:  # type: ignore[no-untyped-def]
    r = report_of(engine, world, "A")
    assert r["opens"] == {"unique_human": 3, "unique_machine": 2, "total": 6}  # s1 s2 s5 | s2 s3 | 2+2+1+1
    assert r["clicks"] == {
        "unique": 3,
        "unique_machine": 1,
        "total": 6,
        "cta_unique": 2,
        "uncertain": 0,
        "cta_confirmed": 0,
    }
    assert r["cta_machine"] == 1
    assert r["machine_reasons"] == {"opens": {"apple_mpp": 2}, "clicks": {"link_scanner": 2}}
    assert (r["delivered"], r["deferred"], r["bounced"], r["dropped"], r["complaints"]) == (5, 2, 1, 0, 1)
    assert r["provider"]["deferred_messages"] == 1 and r["provider"]["processed"] == 6
    assert (r["unsubscribes"], r["leads"], r["cta_leads"], r["booked"]) == (1, 2, 2, 2)


def test_per_link_clicks(engine, world) -> None:  # type: ignore[no-untyped-def]
    links = {
        link["position"]: (link["kind"], link["unique_human"], link["unique_machine"], link["total"])
        for link in report_of(engine, world, "A")["links"]
    }
    assert links == {1: ("article", 1, 1, 2), 2: ("cta", 2, 1, 3), 3: ("read_more", 1, 0, 1)}


def test_by_tag(engine, world) -> None:  # type: ignore[no-untyped-def]
    tags = {t["tag"]: t for t in report_of(engine, world, "A")["by_tag"]}
    assert {
        k: (t["recipients"], t["sent"], t["opened"], t["clicked"], t["cta"], t["leads"]) for k, t in tags.items()
    } == {"anxiety": (2, 2, 2, 2, 2, 2), "depression": (1, 1, 1, 1, 0, 0), "ketamine": (3, 3, 2, 1, 1, 1)}
    assert tags["ketamine"]["rates"] == {"opened": 0.6667, "clicked": 0.3333, "cta": 0.3333, "leads": 0.3333}  # of sent


def test_first_72_hours_count_each_person_at_their_first_event(engine, world) -> None:  # type: ignore[no-untyped-def]
    h = report_of(engine, world, "A")["hourly"]
    nonzero = {
        k: {i: n for i, n in enumerate(h[k]) if n}
        for k in ("opens_human", "opens_machine", "clicks_human", "clicks_machine")
    }
    # s1 at 0:30, s2 at 1:30 (s5 at 80 h is outside); s2 and s3 machine at 0:10 and 0:05;
    # clicks: s1 at 0:40, s2 at exactly 2:00 (hour 2, not 1), s4 at 25:00; the scanner at 0:06.
    assert nonzero == {
        "opens_human": {0: 1, 1: 1},
        "opens_machine": {0: 2},
        "clicks_human": {0: 1, 2: 1, 25: 1},
        "clicks_machine": {0: 1},
    }
    assert h["within"] == {"opens_human": 2, "opens_machine": 2, "clicks_human": 3, "clicks_machine": 1}
    assert h["start"] == T0.isoformat() and len(h["opens_human"]) == 72


def test_without_delivery_reports_the_funnel_counts_from_sent(engine, world) -> None:  # type: ignore[no-untyped-def]
    r = report_of(engine, world, "B")
    assert r["funnel"] == {
        "basis": "sent",
        "recipients": 4,
        "delivered": 4,
        "opened": 2,
        "clicked": 2,
        "cta": 1,
        "leads": 1,
        "booked": 0,
    }  # s1's machine lead counts for nothing
    assert r["delivered"] == 0 and r["rates"]["cta"] == 0.25
    assert {t["tag"]: (t["sent"], t["rates"]["opened"]) for t in r["by_tag"]} == {
        "anxiety": (2, 0.0),
        "depression": (1, 1.0),
        "ketamine": (2, 0.5),
    }


def test_a_campaign_never_sent(engine, world) -> None:  # type: ignore[no-untyped-def]
    from newsletter.reports import campaign_html

    r = report_of(engine, world, "D")
    assert r["funnel"]["recipients"] == 0 and r["rates"]["opened"] is None
    assert r["hourly"]["start"] is None and r["by_tag"] == []
    text, html = _text(print_report, r), campaign_html(r)
    assert "not started" in text and "no engagement yet (sending has not started)" in text
    assert 'id="funnel-chart"' not in html and "Nothing sent yet, so no engagement yet." in html  # no empty axes


def test_unknown_campaign_is_a_user_error(engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s, pytest.raises(NotFound):
        campaign_report(s, 404)


def test_weekly_trends_match_the_hand_count(engine, world) -> None:  # type: ignore[no-untyped-def]
    t = trends_of(engine)
    assert [w["week"] for w in t["weeks"]] == ["2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    assert [w["campaigns"] for w in t["weeks"]] == [0, 0, 1, 1]
    assert t["weeks"][2]["funnel"] == report_of(engine, world, "A")["funnel"]
    assert t["weeks"][3]["funnel"] == report_of(engine, world, "B")["funnel"]
    assert [
        (
            w["growth"]["new"],
            w["growth"]["unsubscribed"],
            w["growth"]["bounced"],
            w["growth"]["complained"],
            w["growth"]["net"],
            w["growth"]["subscribers_at_end"],
        )
        for w in t["weeks"]
    ] == [(0, 0, 0, 0, 0, 4), (2, 0, 0, 0, 2, 6), (3, 1, 1, 0, 1, 7), (1, 1, 0, 1, -1, 6)]
    assert [(w["leads"]["new"], w["leads"]["booked"]) for w in t["weeks"]] == [(0, 0), (0, 0), (2, 2), (1, 0)]
    assert t["totals"]["funnel"] == {
        "basis": "mixed",
        "recipients": 12,
        "delivered": 9,
        "opened": 6,
        "clicked": 5,
        "cta": 3,
        "leads": 3,
        "booked": 2,
    }
    assert t["totals"]["active_subscribers"] == 6 and t["totals"]["growth"]["net"] == 2


def test_best_worst_segments_and_nurture_apart(engine, world) -> None:  # type: ignore[no-untyped-def]
    t = trends_of(engine)
    assert [c["campaign_id"] for c in t["campaigns"]] == [
        world.campaigns["A"],
        world.campaigns["B"],
    ]  # no nurture, no draft
    assert [c["campaign_id"] for c in t["best"]] == [world.campaigns["A"]]  # CTA 2/5 = 40 %
    assert [c["campaign_id"] for c in t["worst"]] == [world.campaigns["B"]]  # CTA 1/4 = 25 %
    assert {s["segment"]: (s["campaigns"], s["funnel"]["cta"]) for s in t["by_segment"]} == {
        "all": (1, 2),
        "ketamine-readers": (1, 1),
    }
    assert [(c["campaign_id"], c["funnel"]["opened"]) for c in t["nurture"]] == [(world.campaigns["N"], 1)]


def test_weeks_follow_the_clinic_time_zone(engine, world) -> None:  # type: ignore[no-untyped-def]
    # Campaign B starts Mon 23 Nov 17:00 UTC = 09:00 in Los Angeles: still week 48 there. A lead
    # created Mon 16 Nov 17:45 UTC is Monday morning in LA too; s7, created Tue 17 Nov 12:00 UTC,
    # is 04:00 Tuesday in LA: week 47 either way.
    t = trends_of(engine, weeks=2, timezone="America/Los_Angeles")
    assert t["period"]["start"] == "2026-11-16T08:00:00+00:00"
    assert [w["campaigns"] for w in t["weeks"]] == [1, 1]
    assert (
        trends_of(engine, weeks=2, now=datetime(2026, 11, 23, 7, tzinfo=UTC), timezone="America/Los_Angeles")["period"][
            "last_week"
        ]
        == "2026-W47"
    )  # 23 Nov 07:00 UTC is still Sunday 22nd in LA


@pytest.mark.parametrize("weeks", [0, -1, 521])
def test_weeks_out_of_range_name_the_option(engine, weeks) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s, pytest.raises(UserError) as caught:
        trends_report(s, weeks=weeks)
    assert caught.value.where == "--weeks"


def test_unknown_time_zone_is_a_user_error(engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s, pytest.raises(UserError) as caught:
        trends_report(s, timezone="Mars/Olympus")
    assert "NEWSLETTER_TIMEZONE" in str(caught.value)


# =============================================================================== tests: the raw events agree


@pytest.mark.parametrize("seed", [1, 2])
def test_every_figure_agrees_with_the_raw_events(engine, seed) -> None:  # type: ignore[no-untyped-def]
    world = build_random_world(engine, 120, seed)
    for name in ("A", "B", "C"):
        _compare(report_of(engine, world, name), raw_figures(engine, world.campaigns[name]))


def test_events_arriving_later_are_counted(engine) -> None:  # type: ignore[no-untyped-def]
    """No cached totals: a late provider event, a late open, a click re-judged a machine and a
    lead booked after the first report all show in the next one, as the raw rows say."""
    from sqlalchemy import update

    world = build_random_world(engine, 60, 3)
    first = report_of(engine, world, "A")
    _compare(first, raw_figures(engine, world.campaigns["A"]))
    with session_scope(engine) as s:
        quiet = [w for (c, w), d in world.deliveries.items() if c == "A"][:3]
        for who in quiet:
            add_event(s, world, "A", who, "open", at(T0, 3))
            add_event(s, world, "A", who, "delivered", at(T0, 0, 3), source="sendgrid")
        s.execute(
            update(models.Event)
            .where(
                models.Event.campaign_id == world.campaigns["A"],
                models.Event.type == "click",
                models.Event.is_machine.is_(False),
            )
            .values(is_machine=True, machine_reason="burst_clicks")
        )
        s.execute(update(models.Lead).values(status="booked"))
    later = report_of(engine, world, "A")
    _compare(later, raw_figures(engine, world.campaigns["A"]))
    assert later["opens"]["total"] == first["opens"]["total"] + 3 and later["funnel"]["clicked"] == 0


def test_trends_are_the_sum_of_the_campaign_reports(engine) -> None:  # type: ignore[no-untyped-def]
    world = build_random_world(engine, 80, 4)
    t = trends_of(engine, weeks=6, now=T0 + timedelta(days=20))
    by_id = {c["campaign_id"]: c for c in t["campaigns"]}
    assert set(by_id) == set(world.campaigns.values())
    for name, cid in world.campaigns.items():
        r = report_of(engine, world, name)
        assert by_id[cid]["funnel"] == r["funnel"] and by_id[cid]["rates"] == r["rates"]
    for stage in ("recipients", "delivered", "opened", "clicked", "cta", "leads", "booked"):
        assert (
            t["totals"]["funnel"][stage]
            == sum(c["funnel"][stage] for c in t["campaigns"])
            == sum(w["funnel"][stage] for w in t["weeks"])
        )


# =============================================================================== tests: every output agrees


def _leaves(data, path=()):  # type: ignore[no-untyped-def]
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _leaves(v, path + (i,))
    else:
        yield path, data


ROW_KEYS = {
    "links": "position",
    "by_tag": "tag",
    "weeks": "week",
    "campaigns": "campaign_id",
    "best": "campaign_id",
    "worst": "campaign_id",
    "nurture": "campaign_id",
    "by_segment": "segment",
}


def _lookup(data: dict, section: str, item: str, metric: str):  # type: ignore[no-untyped-def]
    """Where a CSV row's value lives in the JSON, found without the CSV writer's code."""
    if section == "report":
        return data[metric]
    node = data[section]
    if isinstance(node, list):
        node = next(row for row in node if str(row[ROW_KEYS[section]]) == item)
        item = ""
    for part in metric.split("."):
        node = node[part]
    return node[int(item)] if item else node


def _as_csv(value) -> str:  # type: ignore[no-untyped-def]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_csv(data: dict) -> None:
    rows = list(csv.reader(io.StringIO(to_csv(json.loads(json.dumps(data))))))
    assert rows[0] == ["section", "item", "metric", "value"]
    for section, item, metric, value in rows[1:]:
        assert value == _as_csv(_lookup(data, section, item, metric)), (section, item, metric)
    keys = sum(1 for path, _ in _leaves(data) if not (path[0] in ROW_KEYS and path[-1] == ROW_KEYS[path[0]]))
    assert len(rows) - 1 == keys  # every value once, nothing left out


def _text(render, data: dict) -> str:  # type: ignore[no-untyped-def]
    console = Console(record=True, width=220, color_system=None)
    render(console, data)
    return console.export_text()


def _cells(text: str, label: str) -> list[str]:
    """The cells of the first table row whose first cell is ``label``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r}")


def _pct(value) -> str:  # type: ignore[no-untyped-def]
    return "—" if value is None else f"{100 * value:.1f}%"


def test_csv_and_text_say_what_the_json_says(engine, world) -> None:  # type: ignore[no-untyped-def]
    for name in ("A", "B"):
        data = report_of(engine, world, name)
        _check_csv(data)
        text = _text(print_report, data)
        f, r = data["funnel"], data["rates"]
        for stage, label in (
            ("opened", "opened"),
            ("clicked", "clicked"),
            ("cta", "clicked “Connect today”"),
            ("leads", "became a lead"),
            ("booked", "booked"),
        ):
            assert _cells(text, label)[1:3] == [str(f[stage]), _pct(r[stage])], (name, stage)
        assert _cells(text, "recipients")[1] == str(f["recipients"])
        assert _cells(text, "opened (the pixel)")[1:4] == [
            str(data["opens"][k]) for k in ("unique_human", "unique_machine", "total")
        ]
        assert _cells(text, "clicked")[4] == str(data["clicks"]["unique_machine"])
        assert _cells(text, "unsubscribed (people)")[1] == str(data["unsubscribes"])
        for link in data["links"]:
            assert _cells(text, str(link["position"]))[3:6] == [
                str(link[k]) for k in ("unique_human", "unique_machine", "total")
            ]
        for t in data["by_tag"]:
            assert _cells(text, t["tag"])[1:4] == [
                str(t["recipients"]),
                str(t["sent"]),
                f"{t['opened']} {_pct(t['rates']['opened'])}",
            ]
        assert f"CTA → lead: {data['cta_leads']} of {data['clicks']['cta_unique']} people" in text
    a = report_of(engine, world, "A")
    text = _text(print_report, a)
    assert (
        _cells(text, "delivered (provider events)")[1] == "5"
        and _cells(text, "deferred (attempts / messages)")[1] == "2 / 1"
    )
    assert _cells(text, "bounced (hard / soft)")[1] == "1 / 0" and _cells(text, "complaints")[1] == "1"
    assert _cells(text, "Apple Mail Privacy Protection fetched the images")[1:] == ["2", "0"]
    assert _cells(text, "link scanner")[1:] == ["0", "2"]  # a reason without plain words: its key, spaced
    assert _cells(text, "clicked, people")[1:] == ["1", "2", "2", "3", "3"]  # by 1, 6, 24, 48, 72 hours


def test_trends_csv_and_text_say_what_the_json_says(engine, world) -> None:  # type: ignore[no-untyped-def]
    data = trends_of(engine)
    _check_csv(data)
    text = _text(print_trends, data)
    for w in data["weeks"]:
        cells = [line for line in text.splitlines() if line.startswith(f"│ {w['week']}")]
        assert len(cells) == 2  # the week table and the list table
        week_row = [c.strip() for c in cells[0].strip("│ ").split("│")]
        assert week_row[1:3] == [str(w["campaigns"]), str(w["funnel"]["delivered"])]
        assert week_row[5] == f"{w['funnel']['cta']} {_pct(w['rates']['cta'])}"
        list_row = [c.strip() for c in cells[1].strip("│ ").split("│")]
        g = w["growth"]
        assert list_row[1:] == [
            str(g["new"]),
            str(g["unsubscribed"]),
            str(g["bounced"]),
            str(g["complained"]),
            f"{g['net']:+}",
            str(g["subscribers_at_end"]),
        ]
    assert _cells(text, "ketamine-readers")[1:3] == ["1", "4"]


def test_csv_cells_cannot_start_a_formula(engine, world) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        s.get(models.Campaign, world.campaigns["A"]).subject = '=HYPERLINK("http://evil.example")'
    data = report_of(engine, world, "A")
    subject = next(r for r in csv.reader(io.StringIO(to_csv(data))) if r[2] == "subject")
    assert subject[3] == '\'=HYPERLINK("http://evil.example")'


# =============================================================================== tests: the command


def test_report_command_outputs_agree(engine, world, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cli_runs import run_newsletter as run

    env = {"NEWSLETTER_DATABASE_URL": db_url}
    cid = str(world.campaigns["A"])
    expected = json.loads(json.dumps(report_of(engine, world, "A"), default=str))
    as_json = run(["report", cid, "--json"], tmp_path, env)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == expected
    as_csv = run(["report", cid, "--csv"], tmp_path, env)
    assert as_csv.returncode == 0 and as_csv.stdout == to_csv(expected)
    page = tmp_path / "a.html"
    text = run(["report", cid, "--html", str(page)], tmp_path, env)
    assert text.returncode == 0 and f"wrote {page}" in text.stdout
    assert "Connect today" in text.stdout and "became a lead" in text.stdout
    assert 'data-stage="booked"' in page.read_text() and 'id="funnel-chart"' in page.read_text()
    trends = run(["report", "--weeks", "3", "--json"], tmp_path, env)
    assert trends.returncode == 0, trends.stderr
    data = json.loads(trends.stdout)
    assert data["period"]["weeks"] == 3 and len(data["weeks"]) == 3 and "best" in data and "by_segment" in data
    assert run(["report", "--weeks", "3"], tmp_path, env).returncode == 0


@pytest.mark.parametrize(
    "args, code, where",
    [
        (["report", "1", "--json", "--csv"], 2, "--csv"),
        (["report", "1", "--weeks", "4"], 2, "--weeks"),
        (["report", "404"], 1, "campaign"),
        (["report", "--weeks", "0"], 1, "--weeks"),
        (["report", "1", "--html", "no/such/folder/r.html"], 1, "no/such/folder"),
    ],
)
def test_report_command_mistakes(engine, world, db_url, tmp_path, args, code, where) -> None:  # type: ignore[no-untyped-def]
    from cli_runs import run_newsletter as run

    result = run(args, tmp_path, {"NEWSLETTER_DATABASE_URL": db_url})
    assert result.returncode == code and where in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("**/*.html"))


# =============================================================================== tests: plain English


def add_hidden_link(engine: Engine, world: World, campaign: str = "A") -> None:
    """The template's hidden link (templates/partials/honeypot.mjml.j2) and a scanner that clicked it."""
    with session_scope(engine) as s:
        link = models.CampaignLink(
            campaign_id=world.campaigns[campaign],
            position=4,
            url="https://example.org/hidden",
            label="Hidden link (only machines click it)",
            kind="honeypot",
        )
        s.add(link)
        s.flush()
        world.links[(campaign, 4)] = link.id
        add_event(s, world, campaign, "s3", "click", at(T0, 0, 7), link=4, machine=True, reason="honeypot")


def add_silent_campaign(engine: Engine, world: World) -> int:
    """Campaign S: sent to s1–s4 a day ago, and nobody (person or machine) has opened or clicked."""
    with session_scope(engine) as s:
        _campaign(s, world, "S", started=NOW - timedelta(days=1))
        _ledger(s, world, "S", {"s1": "sent", "s2": "sent", "s3": "sent", "s4": "sent"}, NOW - timedelta(days=1))
    return world.campaigns["S"]


def test_text_report_names_links_and_machines_in_plain_words(engine, world) -> None:  # type: ignore[no-untyped-def]
    add_hidden_link(engine, world)
    data = report_of(engine, world, "A")
    assert {link["kind"] for link in data["links"]} >= {"honeypot", "cta"}  # --json keeps the keys
    assert data["machine_reasons"]["clicks"]["honeypot"] == 1
    for width in (220, 80):
        console = Console(record=True, width=width, color_system=None)
        print_report(console, data)
        text = console.export_text()
        assert "honeypot" not in text.lower() and "read_more" not in text and "apple_mpp" not in text
        assert "…" not in text  # nothing cut short, even at 80 columns
    text = _text(print_report, data)
    assert _cells(text, "4")[1:3] == ["hidden link only machines click", "Hidden link (only machines click it)"]
    assert _cells(text, "2")[1] == "“Connect today” button" and _cells(text, "3")[1] == "“Read more” link"
    assert _cells(text, "clicked a hidden link only machines click")[1:] == ["0", "1"]


def test_text_report_of_a_campaign_nobody_engaged_with(engine, world) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        data = campaign_report(s, add_silent_campaign(engine, world))
    text = _text(print_report, data)
    assert "First 72 hours: no engagement yet (nobody has opened or clicked)." in text
    assert "people by hour" not in text  # no table of zeros
