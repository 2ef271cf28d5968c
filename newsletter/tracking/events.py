"""What every event the tracking routes store is made of: the request, the key, the row.

Opens and clicks (:mod:`.opens`, :mod:`.clicks`), the CTA's confirmation (:mod:`.cta`) and
unsubscribes (:mod:`.unsubscribe`) are plain functions over a SQLAlchemy ``Session`` or
``Connection`` (:data:`~.queries.Db`: the web app's writer uses a Connection); the caller owns the
transaction. Nothing here knows about HTTP beyond :class:`RequestInfo`.

Each call stores ``events`` rows with our own ``event_key`` (:func:`new_key`), the human/machine
verdict (:mod:`.classify`), the stored form of the address (:mod:`.privacy`, per
:class:`~.options.TrackingOptions`) and the user agent.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert

from newsletter.db.models import Event
from newsletter.tracking.classify import Verdict
from newsletter.tracking.options import TrackingOptions
from newsletter.tracking.privacy import store_ip
from newsletter.tracking.queries import Db

USER_AGENT_MAX = 500


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


def clip_agent(user_agent: str | None) -> str | None:
    agent = (user_agent or "").strip()
    return agent[:USER_AGENT_MAX] or None


def _stored_ip(request: RequestInfo | None, options: TrackingOptions) -> str | None:
    return store_ip(request.ip, options.ip_storage, options.ip_hash_key) if request else None


def new_key() -> str:
    """32 hex digits: microseconds since the epoch, then 72 random bits. Time first, so new keys
    land at the end of the unique index instead of anywhere in it: on a table of a few hundred
    thousand events that makes a commit of opens about three times cheaper (bench/RESULTS.md)."""
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(9)}"


def new_keys(count: int) -> list[str]:
    """``count`` keys as :func:`new_key` makes them, one time and one call for random bytes for
    the lot (a batch of the web app's recorder)."""
    stamp = f"{time.time_ns() // 1000:014x}"
    random = secrets.token_hex(9 * count)
    return [stamp + random[i : i + 18] for i in range(0, 18 * count, 18)]


class StoredForms:
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
            found = self.agents[agent] = clip_agent(agent)
            return found


EVENTS = cast(Table, Event.__table__)  # Core statements on the table: no ORM bulk machinery on the hot paths


def event_row(
    *,
    type_: str,
    campaign_id: int | None,
    delivery_id: int | None,
    subscriber_id: int | None,
    verdict: Verdict,
    request: RequestInfo | None,
    now: datetime,
    options: TrackingOptions,
    link_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``events`` row of the rarer events (a lead, a confirmation, an unsubscribe), as a dict."""
    row: dict[str, Any] = dict(
        event_key=new_key(),
        type=type_,
        source="tracking",
        campaign_id=campaign_id,
        delivery_id=delivery_id,
        subscriber_id=subscriber_id,
        link_id=link_id,
        is_machine=verdict.is_machine,
        machine_reason=verdict.reason,
        occurred_at=now,
        ip_prefix=_stored_ip(request, options),
        user_agent=clip_agent(request.user_agent) if request else None,
    )
    if data is not None:  # left out rather than None: SQL NULL, not the JSON text 'null'
        row["data"] = data
    return row


def insert_event(db: Db, **fields: Any) -> None:
    db.execute(insert(EVENTS), event_row(**fields))
