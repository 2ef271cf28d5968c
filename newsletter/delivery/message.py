"""What a transport is given and what it answers. Shared by every transport and the dispatcher.

A campaign's content is built once (``CampaignMessage``, placeholders still in it); each
recipient adds only a handful of substitutions. Transports never see the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
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


class ErrorKind(Enum):
    """What the dispatcher does about a batch the provider did not accept: one decision each."""

    #: Stop the campaign: no batch can succeed until a person acts (401/403: bad key,
    #: unverified sender, an account problem).
    PAUSE = "pause"
    #: The request may have reached the provider (no answer after it left, an unexpected 2xx):
    #: the batch is flagged for an operator, never resent blindly.
    AMBIGUOUS = "ambiguous"
    #: Named recipients were refused (``rejected``); the others were not sent and may be.
    REJECTED = "rejected"
    #: The request as a whole was refused without naming anyone (400, 413): halve the batch
    #: until the bad recipient stands alone.
    SPLIT = "split"
    #: Too fast (429): slow down, then try the same batch again.
    RATE_LIMITED = "rate_limited"
    #: Try the same batch again later (5xx, the provider unreachable, a disk full).
    RETRYABLE = "retryable"
    #: Final for every recipient of the batch.
    PERMANENT = "permanent"


#: The kinds for which sending the same request again may succeed.
RETRIED = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.RETRYABLE})


class TransportError(Exception):
    """The batch as a whole was not accepted; ``kind`` says what to do about it.

    ``status``: the provider's HTTP status, when it answered. ``retry_after``: seconds the
    provider asked us to wait, when it said. ``rejected`` (kind ``REJECTED``): position in
    the batch as sent → the provider's words about that recipient.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind = ErrorKind.PERMANENT,
        status: int | None = None,
        retry_after: float | None = None,
        rejected: Mapping[int, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.rejected: Mapping[int, str] = dict(rejected or {})

    def __repr__(self) -> str:
        return f"TransportError({self.message!r}, kind={self.kind.name}, status={self.status})"


class Transport(Protocol):
    """What the dispatcher uses of a transport, all of it.

    ``prepare(message, recipients)`` returns the request it would make for exactly those
    recipients (opaque to the dispatcher), or None when there is nothing worth making ahead
    (the outbox); the dispatcher prepares batch N+1 on its own thread while batch N's request
    is out, and hands it back as ``send_batch(..., prepared=...)``, so the sending thread only
    sends. ``send_batch`` answers a :class:`BatchOutcome` or raises :class:`TransportError`.
    """

    name: str

    def prepare(self, message: CampaignMessage, recipients: Sequence[Recipient]) -> object | None: ...

    def send_batch(
        self, message: CampaignMessage, recipients: Sequence[Recipient], prepared: object | None = None
    ) -> BatchOutcome: ...

    def close(self) -> None: ...
