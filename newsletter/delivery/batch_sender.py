"""Sending one claimed batch: the retry policy and what each kind of error means for it.

Needs only a :class:`Transport` (and, optionally, the :class:`Throttle` to slow down on a
429): no store. What the dispatcher must write to the ledger comes back as
:data:`BatchAnswer`, and a ``before_retry`` hook lets it renew the batch's lease while it waits.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from newsletter.delivery.message import (
    RETRIED,
    BatchOutcome,
    CampaignMessage,
    ErrorKind,
    Recipient,
    Transport,
    TransportError,
)
from newsletter.delivery.throttle import Throttle

log = logging.getLogger(__name__)

#: One batch's answer: (outcome, ambiguous delivery ids, the pausing error or None).
BatchAnswer = tuple[BatchOutcome, list[int], TransportError | None]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter, for answers that say "try again"."""

    max_attempts: int = 5
    base_seconds: float = 0.5
    cap_seconds: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after > 0:
            return min(retry_after, self.cap_seconds * 5)
        return random.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))


class BatchSender:
    """Sends one claimed batch through a transport, handling each kind of answer."""

    def __init__(
        self,
        transport: Transport,
        message: CampaignMessage,
        retry: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
        throttle: Throttle | None = None,
        before_retry: Callable[[], None] | None = None,
    ) -> None:
        self.transport = transport
        self.message = message
        self.retry = retry
        self.sleep = sleep
        self.throttle = throttle
        self.before_retry = before_retry or (lambda: None)

    def send(self, recipients: list[Recipient], prepared: object | None = None) -> BatchAnswer:
        """Returns (outcome, ambiguous ids, pausing error or None). ``prepared``: the transport's
        own request for exactly ``recipients`` (see ``Transport``), reused for every retry."""
        outcome = BatchOutcome()
        ambiguous: list[int] = []
        pause = self._send_part(recipients, outcome, ambiguous, prepared)
        return outcome, ambiguous, pause

    def _post(self, recipients: list[Recipient], prepared: object | None) -> BatchOutcome:
        # Unprepared, the short call: transports written before ``prepare`` existed still work.
        if prepared is None:
            return self.transport.send_batch(self.message, recipients)
        return self.transport.send_batch(self.message, recipients, prepared=prepared)

    def _send_part(
        self, recipients: list[Recipient], outcome: BatchOutcome, ambiguous: list[int], prepared: object | None = None
    ) -> TransportError | None:
        if not recipients:
            return None
        attempt = 0
        while True:
            try:
                answer = self._post(recipients, prepared)
            except TransportError as error:
                kind = error.kind
                if kind is ErrorKind.PAUSE:
                    return error
                if kind is ErrorKind.AMBIGUOUS:
                    ambiguous.extend(r.delivery_id for r in recipients)
                    return None
                if kind is ErrorKind.REJECTED and error.rejected:
                    return self._drop_rejected(recipients, error, outcome, ambiguous)
                if kind is ErrorKind.SPLIT or kind is ErrorKind.REJECTED:  # rejected, naming nobody: split
                    return self._split(recipients, error, outcome, ambiguous)
                if kind is ErrorKind.RATE_LIMITED and self.throttle:
                    self.throttle.slow_down()
                if kind in RETRIED and attempt + 1 < self.retry.max_attempts:
                    delay = self.retry.delay(attempt, error.retry_after)
                    log.warning("batch of %d: %s; retrying in %.1fs", len(recipients), error.message, delay)
                    self.sleep(delay)
                    self.before_retry()
                    attempt += 1
                    continue
                for r in recipients:
                    outcome.failed[r.delivery_id] = f"{error.message} (after {attempt + 1} attempt(s))"
                return None
            outcome.sent.update(answer.sent)
            outcome.failed.update(answer.failed)
            outcome.per_recipient_ids = outcome.per_recipient_ids or answer.per_recipient_ids
            if self.throttle:
                self.throttle.recover()
            return None

    def _drop_rejected(
        self, recipients: list[Recipient], error: TransportError, outcome: BatchOutcome, ambiguous: list[int]
    ) -> TransportError | None:
        """The recipients the provider named fail with its words; the rest go again (a request
        made anew: the prepared one still holds the rejected)."""
        bad = error.rejected
        for index in sorted(bad):
            if 0 <= index < len(recipients):
                outcome.failed[recipients[index].delivery_id] = str(bad[index])
        rest = [r for i, r in enumerate(recipients) if i not in bad]
        return self._send_part(rest, outcome, ambiguous)

    def _split(
        self, recipients: list[Recipient], error: TransportError, outcome: BatchOutcome, ambiguous: list[int]
    ) -> TransportError | None:
        """A 400 that names nobody, or a 413: halve until the bad recipient stands alone."""
        if len(recipients) == 1:
            outcome.failed[recipients[0].delivery_id] = error.message
            return None
        middle = len(recipients) // 2
        pause = self._send_part(recipients[:middle], outcome, ambiguous)
        return pause or self._send_part(recipients[middle:], outcome, ambiguous)
