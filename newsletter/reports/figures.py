"""The headline figures of one or many campaigns, each metric one grouped statement.

Every report (one campaign, the weekly trends, the director's email) reads its funnel from
:func:`campaign_figures`, so the same number is never computed two ways. Each statement groups
by ``campaign_id`` over ``campaign_id IN (…)``: a trends report over twelve campaigns costs the
same handful of statements as one campaign. Nothing is cached or rolled up: each statement reads
the campaign's stretch of ``ix_events_campaign_people`` (migration 0003), so a report costs the
size of its campaign, not of the events table, and an event that arrives (or is re-judged) late
is in the next report (the `report.py` section of bench/RESULTS.md). The statements themselves,
and why each is shaped as it is, are in :mod:`.queries`; this module defines and adds up.

Definitions (people are distinct subscribers; "human" is ``is_machine`` false):

* ``recipients``: ledger rows; ``sent``: rows the provider accepted.
* ``delivered``: messages with a provider ``delivered`` event (one ledger row per subscriber
  and campaign, so: people with one).
* ``opened``: people with a human open *or* a human click. A click proves the message was
  opened even when images were blocked; the pixel-only figure is ``opened_pixel``.
* ``clicked``: people with a human click; ``cta``: on a link of kind ``cta``.
* ``leads``: people whose CTA click counted as a lead in this campaign (a human ``lead``
  event; a doubted click counts once the person confirms it).
* ``booked``: of those, people whose lead is ``booked`` or ``client`` now, or went through
  ``booked`` at any time (``lead_status_changes``). A person who clicked the CTA of two
  campaigns counts in both: the figures describe each campaign's reach, not a split of credit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import false
from sqlalchemy.orm import Session

from newsletter.db import models
from newsletter.reports.queries import (
    BOOKED_STATUSES,
    analytics,
    booked_people,
    cta_link_ids,
    ledger_per_status,
    people_of_type,
    people_where,
)

__all__ = [
    "BOOKED_STATUSES",
    "ENGAGEMENT_TYPES",
    "STAGES",
    "analytics",
    "campaign_figures",
    "funnel",
    "rate",
    "rates",
    "sum_figures",
]

E = models.Event

#: Counted in people per (campaign, type, human/machine). ``delivered`` too: a campaign's ledger
#: holds one row per subscriber, so its delivered people are its delivered messages, and counting
#: subscribers keeps the statement inside ``ix_events_campaign_people``.
ENGAGEMENT_TYPES = ("delivered", "open", "click", "lead", "cta_confirm")

#: Funnel stages in order, with the label people read.
STAGES = (
    ("recipients", "Recipients"),
    ("delivered", "Delivered"),
    ("opened", "Opened"),
    ("clicked", "Clicked"),
    ("cta", "Clicked “Connect today”"),
    ("leads", "Became a lead"),
    ("booked", "Booked"),
)

_FIGURE_KEYS = (
    "recipients",
    "sent",
    "queued",
    "in_flight",
    "failed",
    "ambiguous",
    "suppressed",
    "delivered",
    "opened",
    "opened_pixel",
    "opened_machine",
    "clicked",
    "clicked_machine",
    "cta",
    "cta_machine",
    "cta_confirmed",
    "leads",
    "booked",
    "unsubscribed",
    "base",
    "unreported",
)


def _ids(campaign_ids: Iterable[int]) -> list[int]:
    return sorted(set(campaign_ids))


def _grouped(session: Session, query: Any) -> dict[Any, int]:
    return {row[0]: row[1] for row in session.execute(query).all()}


def _distinct_people(session: Session, ids: list[int], *conditions: Any) -> dict[int, int]:
    return _grouped(session, people_where(ids, *conditions))


def _ledger(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for cid, status, n in session.execute(ledger_per_status(ids)):
        out[cid][status] = n
    return out


def _engagement(session: Session, ids: list[int]) -> dict[tuple[int, str, bool], int]:
    """People per (campaign, type, machine) for the engagement events (one statement per type)."""
    out = {}
    for type_ in ENGAGEMENT_TYPES:
        for cid, machine, n in session.execute(people_of_type(ids, type_)):
            out[(cid, type_, bool(machine))] = n
    return out


def campaign_figures(session: Session, campaign_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Funnel and ledger figures per campaign (every key of ``_FIGURE_KEYS``, zeros included)."""
    ids = _ids(campaign_ids)
    if not ids:
        return {}
    human = E.is_machine == false()
    ledger = _ledger(session, ids)
    engagement = _engagement(session, ids)
    opened = _distinct_people(session, ids, E.type.in_(("open", "click")), human)
    cta = _distinct_people(session, ids, E.type == "click", human, E.link_id.in_(cta_link_ids(ids)))
    cta_machine = _distinct_people(
        session, ids, E.type == "click", E.is_machine.is_(True), E.link_id.in_(cta_link_ids(ids))
    )
    unsubscribed = _distinct_people(session, ids, E.type == "unsubscribe")
    booked = _grouped(session, booked_people(ids))
    out: dict[int, dict[str, int]] = {}
    for cid in ids:
        rows = ledger.get(cid, {})
        out[cid] = {
            "recipients": sum(rows.values()),
            **{status: rows.get(status, 0) for status in models.DELIVERY_STATUSES},
            "delivered": engagement.get((cid, "delivered", False), 0) + engagement.get((cid, "delivered", True), 0),
            "opened": opened.get(cid, 0),
            "opened_pixel": engagement.get((cid, "open", False), 0),
            "opened_machine": engagement.get((cid, "open", True), 0),
            "clicked": engagement.get((cid, "click", False), 0),
            "clicked_machine": engagement.get((cid, "click", True), 0),
            "cta": cta.get(cid, 0),
            "cta_machine": cta_machine.get(cid, 0),
            "cta_confirmed": engagement.get((cid, "cta_confirm", False), 0),
            "leads": engagement.get((cid, "lead", False), 0),
            "booked": booked.get(cid, 0),
            "unsubscribed": unsubscribed.get(cid, 0),
        }
        # The rates' denominator: delivered messages, or sent ones while delivery is unknown.
        out[cid]["base"] = out[cid]["delivered"] or out[cid]["sent"]
        out[cid]["unreported"] = int(not out[cid]["delivered"] and bool(out[cid]["sent"]))
    return out


def rate(part: int, whole: int) -> float | None:
    """A share rounded to four places (0.1234 = 12.34 %); ``None`` when there is no whole."""
    return round(part / whole, 4) if whole else None


def funnel(figures: dict[str, int]) -> dict[str, Any]:
    """The funnel of one campaign (or of a sum of campaigns) from its figures.

    Without provider events (the outbox, or no Event Webhook yet) delivery is unknown, which is
    not zero: the ``delivered`` stage then shows the messages ``sent`` and ``basis`` says so
    (``mixed`` for a sum of campaigns of which only some have delivery reports).
    """
    if not figures["unreported"]:
        basis = "delivered" if figures["delivered"] or not figures["sent"] else "sent"
    else:
        basis = "sent" if not figures["delivered"] else "mixed"
    return {
        "basis": basis,
        "recipients": figures["recipients"],
        "delivered": figures["base"],
        **{k: figures[k] for k in ("opened", "clicked", "cta", "leads", "booked")},
    }


def rates(stages: dict[str, Any]) -> dict[str, float | None]:
    """Rates of the funnel: delivery of recipients, click-to-open of opened, the rest of delivered."""
    base = stages["delivered"]
    return {
        "delivered": rate(base, stages["recipients"]),
        "opened": rate(stages["opened"], base),
        "clicked": rate(stages["clicked"], base),
        "click_to_open": rate(stages["clicked"], stages["opened"]),
        "cta": rate(stages["cta"], base),
        "leads": rate(stages["leads"], base),
        "booked": rate(stages["booked"], base),
    }


def sum_figures(many: Iterable[dict[str, int]]) -> dict[str, int]:
    """Figures of several campaigns added up (people are counted once per campaign)."""
    total = dict.fromkeys(_FIGURE_KEYS, 0)
    for figures in many:
        for key in _FIGURE_KEYS:
            total[key] += figures[key]
    return total
