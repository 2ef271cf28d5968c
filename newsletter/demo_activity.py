"""Three days of made-up readers for ``newsletter demo``, so its report has something to show.

Only the demo uses this, and it says so when it runs. The activity goes through the same
tracking functions the web app calls for a real pixel or click (``record_opens`` /
``record_clicks``), so people and machines are told apart by the product's own rules: a share of
readers behind Apple's privacy proxy, a mail scanner that clicks every link seconds after
delivery, people who open hours later, some of whom read the article and press "Connect today".
The campaign is moved three days into the past first, so those hours have already happened.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine  # passed through to the rooms' faces, never used here

DAYS_BACK = 3
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
APPLE_PROXY = "Mozilla/5.0"  # what Apple Mail Privacy Protection's image proxy sends
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel URL Scanner)"


@dataclass(frozen=True)
class Activity:
    """What the made-up readers did, as the product's own rules counted it."""

    human_opens: int
    machine_opens: int
    human_clicks: int
    machine_clicks: int
    connect_today: int


def backdate(engine: Engine, campaign_id: int, days: int = DAYS_BACK) -> None:
    """Move the campaign's sending ``days`` into the past (the demo's clock, not the ledger's rules)."""
    from newsletter.campaigns import backdate_campaign
    from newsletter.db import session_scope

    with session_scope(engine) as session:
        backdate_campaign(session, campaign_id, days)


def simulate_readers(engine: Engine, campaign_id: int, *, seed: int = 2026, now: datetime | None = None) -> Activity:
    """Opens and clicks for the campaign's sent messages, none later than ``now``."""
    from newsletter.campaigns import link_kinds, sent_messages
    from newsletter.db import session_scope
    from newsletter.tracking import ClickResult, RequestInfo, record_clicks, record_opens

    now = now or datetime.now(timezone.utc)
    rng = random.Random(seed)
    with session_scope(engine) as session:
        sent = sent_messages(session, campaign_id)
        links = link_kinds(session, campaign_id)
    cta = [p for p, kind in links if kind == "cta"]
    reading = [p for p, kind in links if kind not in ("cta", "honeypot")]
    visible = [p for p, kind in links if kind != "honeypot"]
    opens: list[tuple[int, RequestInfo, datetime]] = []
    clicks: list[tuple[int, int, RequestInfo, datetime]] = []
    for number, (delivery_id, sent_at) in enumerate(sent):
        roll = rng.random()
        address = f"198.51.100.{number % 250 + 1}"
        if roll < 0.06:  # a company's mail gateway: fetches the image and walks every link at once
            seen = sent_at + timedelta(seconds=2)
            opens.append((delivery_id, RequestInfo(ip=address, user_agent=SCANNER), seen))
            clicks.extend((delivery_id, p, RequestInfo(ip=address, user_agent=SCANNER), seen) for p in visible)
            continue
        if roll < 0.26:  # Apple Mail: the proxy prefetches the image whether or not anyone reads
            opens.append(
                (
                    delivery_id,
                    RequestInfo(ip=None, user_agent=APPLE_PROXY),
                    sent_at + timedelta(minutes=rng.uniform(1, 20)),
                )
            )
            if rng.random() > 0.35:
                continue  # and sometimes the person reads it too
        elif roll > 0.72:
            continue  # did not open it
        opened = min(now - timedelta(minutes=5), sent_at + timedelta(hours=rng.expovariate(1 / 9)))
        agent = PHONE if rng.random() < 0.55 else BROWSER
        person = RequestInfo(ip=address, user_agent=agent, accept_language="en-US,en;q=0.9")
        opens.append((delivery_id, person, opened))
        if reading and rng.random() < 0.30:
            clicks.append((delivery_id, rng.choice(reading), person, opened + timedelta(minutes=rng.uniform(0.5, 6))))
        if cta and rng.random() < 0.14:
            clicks.append((delivery_id, cta[0], person, opened + timedelta(minutes=rng.uniform(2, 12))))
    with session_scope(engine) as session:
        open_verdicts = record_opens(session, sorted(opens, key=lambda item: item[2]))
        click_results = record_clicks(session, sorted(clicks, key=lambda item: item[3]))
    verdicts = [verdict for verdict in open_verdicts if verdict is not None]
    clicked = [result for result in click_results if isinstance(result, ClickResult)]  # never an unknown link here
    people = [result for result in clicked if not result.is_machine]
    return Activity(
        human_opens=sum(not verdict.is_machine for verdict in verdicts),
        machine_opens=sum(verdict.is_machine for verdict in verdicts),
        human_clicks=len(people),
        machine_clicks=len(clicked) - len(people),
        connect_today=sum(result.lead_id is not None for result in people),
    )


def staff_books(engine: Engine, count: int = 3) -> list[int]:
    """The front desk calls the first few leads and books their consultations (demo only)."""
    from newsletter.db import session_scope
    from newsletter.leads import list_leads, update_status

    with session_scope(engine) as session:
        ids = sorted(lead.id for lead in list_leads(session))[:count]  # the first leads made
        for lead_id in ids:
            update_status(session, lead_id, "contacted", by="demo: front desk", note="called back")
            update_status(session, lead_id, "booked", by="demo: front desk", note="first consultation booked")
    return ids
