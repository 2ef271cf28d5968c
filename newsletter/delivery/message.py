"""What a transport is given and what it answers. Shared by every transport and the dispatcher.

A campaign's content is built once (``CampaignMessage``, placeholders still in it); each
recipient adds only a handful of substitutions. Transports never see the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class CampaignMessage:
    campaign_id: int
    subject: str  # may hold placeholders such as %%first_name%%
    html: str
    text: str
    from_email: str
    from_name: str
    reply_to: str | None
    category: str  # one SendGrid category per campaign, e.g. "campaign-12"
    sending_domain: str  # for Message-ID headers


@dataclass(slots=True)
class Recipient:
    """One person of a batch. Not frozen, though nothing changes one: a send builds a million,
    and a frozen dataclass's ``__init__`` (``object.__setattr__`` per field) costs five times as
    much as this one."""

    delivery_id: int
    email: str
    name: str | None
    substitutions: dict[str, str]  # placeholder -> value, e.g. {"%%token%%": "..."}
    unsubscribe_url: str  # absolute URL of our one-click endpoint for this recipient


@dataclass
class BatchOutcome:
    """The answer for one batch: every recipient is in exactly one of the two maps."""

    sent: dict[int, str | None] = field(default_factory=dict)  # delivery id -> provider message id
    failed: dict[int, str] = field(default_factory=dict)  # delivery id -> reason, final for that recipient
    #: Each recipient got a message id of their own (the outbox), not one per request (SendGrid):
    #: the send log then keeps the count without the ids.
    per_recipient_ids: bool = False


class TransportError(Exception):
    """The batch as a whole was not accepted.

    ``retryable``: the same batch may be tried again (5xx, 429, timeout, reset).
    ``pause``: no batch can succeed until a person acts (401/403: bad key, unverified sender).
    ``retry_after``: seconds the provider asked us to wait, when it said.
    ``ambiguous``: the request may have reached the provider (timeout after sending).
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 pause: bool = False, retry_after: float | None = None, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.pause = pause
        self.retry_after = retry_after
        self.ambiguous = ambiguous


class Transport(Protocol):
    """Sends batches. A transport may also offer ``prepare(message, recipients)``, returning the
    request it would make (opaque to the dispatcher), and accept it back as
    ``send_batch(..., prepared=...)``: the dispatcher then prepares batch N+1 on its own thread
    while batch N's request is out, so the sending thread only sends."""

    name: str

    def send_batch(self, message: CampaignMessage, recipients: Sequence[Recipient]) -> BatchOutcome: ...

    def close(self) -> None: ...
