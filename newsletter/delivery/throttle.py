"""Pacing a send so it never overruns the account's limits.

Two kinds of limit, enforced together before each batch:

* a **rate** (messages per second), paced in this process: each batch books ``n / rate``
  seconds of the timeline, so a 1000-recipient batch at 500/s is followed by a 2 s gap. With
  several workers, give each its share (``NEWSLETTER_RATE_PER_SECOND`` is per worker).
* **windows** (per hour, per day), counted in the store (recipients the provider accepted in
  the last hour/day by the send log, plus ledger rows in flight, across every campaign and
  every worker), so they hold however many workers run. A batch is shrunk to what the window
  still allows, or waits for room.

On a 429 the rate halves (never below ``min_rate``) and then recovers by 10% per clean batch:
SendGrid is telling us its own limit is lower than ours.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, func, select

from newsletter.db import models, session_scope
from newsletter.db.models import utcnow

D = models.Delivery
L = models.SendLog


@dataclass(frozen=True)
class Limits:
    rate_per_second: float | None = None
    per_hour: int | None = None
    per_day: int | None = None


def ledger_window_count(engine: Engine) -> Callable[[timedelta], int]:
    """Messages sent or in flight within the last ``window``, across all campaigns.

    Sent: the send log's rows (one per accepted request, indexed by time), not the ledger's
    ``sent_at``, which is not indexed (see ``models.Delivery``). In flight: ledger rows of the
    campaigns being sent or just paused, the only ones a worker may hold."""

    def count(window: timedelta) -> int:
        since = utcnow() - window
        with session_scope(engine) as session:
            sent = session.scalar(select(func.coalesce(func.sum(L.recipients), 0)).where(L.recorded_at >= since)) or 0
            flying = (
                session.scalar(
                    select(func.count())
                    .select_from(D)
                    .join(models.Campaign, models.Campaign.id == D.campaign_id)
                    .where(models.Campaign.status.in_(("sending", "paused")), D.status == "in_flight")
                )
                or 0
            )
        return int(sent) + flying

    return count


class Throttle:
    def __init__(
        self,
        limits: Limits,
        window_count: Callable[[timedelta], int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window_poll_seconds: float = 30.0,
        min_rate: float = 1.0,
    ) -> None:
        self.limits = limits
        self.rate = limits.rate_per_second
        self.window_count = window_count
        self.clock = clock
        self.sleep = sleep
        self.window_poll_seconds = window_poll_seconds
        self.min_rate = min_rate
        self._next_start = clock()
        self._booking = threading.Lock()
        self.waited = 0.0

    def allowance(self, wanted: int, should_stop: Callable[[], bool] = lambda: False) -> int:
        """How many messages the next batch may carry (≤ ``wanted``); waits while the windows are full."""
        while True:
            room = self._window_room(wanted)
            if room > 0 or should_stop():
                return max(room, 0)
            self._wait(self.window_poll_seconds)

    def pace(self, n: int) -> None:
        """Book ``n`` more messages on the rate's timeline and wait for their turn. Booked under
        a lock: with several requests out at once, each sending thread paces its own batch."""
        if not self.rate:
            return
        with self._booking:
            now = self.clock()
            start = max(now, self._next_start)
            self._next_start = start + n / self.rate
        if start > now:
            self._wait(start - now)

    def slow_down(self) -> None:
        if self.rate:
            self.rate = max(self.min_rate, self.rate / 2)

    def recover(self) -> None:
        if self.rate and self.limits.rate_per_second:
            self.rate = min(self.limits.rate_per_second, self.rate * 1.1)

    def _window_room(self, wanted: int) -> int:
        room = wanted
        if self.window_count is None:
            return room
        for limit, window in ((self.limits.per_hour, timedelta(hours=1)), (self.limits.per_day, timedelta(days=1))):
            if limit:
                room = min(room, limit - self.window_count(window))
        return room

    def _wait(self, seconds: float) -> None:
        with self._booking:
            self.waited += seconds
        self.sleep(seconds)
