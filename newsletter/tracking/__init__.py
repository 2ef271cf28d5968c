"""Tracking: signed delivery tokens, opens, clicks, unsubscribes, the SendGrid Event Webhook,
suppression from provider events, human/machine classification, retention.

Public face (import from here): ``TokenSigner``, ``ContinueSigner``, ``InvalidToken``,
``RequestInfo``, ``record_open``, ``record_click`` (→ ``ClickResult``), their batch forms
``record_opens`` / ``record_clicks`` and ``Recorder`` (group commit for the web), ``confirm_cta``,
``unsubscribe`` (→ ``UnsubscribeResult``), ``UnknownLink``, ``UnknownDelivery``, ``classify``
(→ ``Verdict``), ``Classifier``, ``find_bursts``, ``REASONS``, ``DOUBTS``, ``truncate_ip``,
``hash_ip``, ``store_ip``, ``prune_event_details``; the webhook: ``WebhookVerifier``,
``WebhookError`` (``MissingSignature``, ``BadSignature``, ``StaleTimestamp``),
``InvalidPublicKey``, ``parse_batch``, ``MalformedBatch``, ``ingest_events`` (→ ``IngestResult``) and
its two halves ``prepare_batch`` / ``store_batch``;
``suppress`` / ``SuppressionRequest``; settings: ``TrackingOptions``, ``options_from_settings``;
and the reader's preferences: ``load_preferences``, ``save_preferences``, ``Preferences``,
``InvalidPreferences``, ``INTEREST_TAGS``; the outbox viewer's counts: ``engagement`` (→ ``Engagement``).

No web framework here: the web room turns requests into :class:`RequestInfo` and results into
responses.
"""

from newsletter.tracking import tokens
from newsletter.tracking.classify import (
    DOUBTS,
    REASONS,
    Classifier,
    Verdict,
    classify,
    default_classifier,
    find_bursts,
)
from newsletter.tracking.clicks import ClickResult, record_click, record_clicks
from newsletter.tracking.cta import confirm_cta
from newsletter.tracking.engagement import Engagement, engagement
from newsletter.tracking.events import RequestInfo, UnknownDelivery, UnknownLink
from newsletter.tracking.opens import record_open, record_opens
from newsletter.tracking.options import TrackingOptions, derive_ip_hash_key, options_from_settings
from newsletter.tracking.preferences import (
    INTEREST_TAGS,
    InvalidPreferences,
    Preferences,
    load_preferences,
    save_preferences,
)
from newsletter.tracking.privacy import hash_ip, store_ip, truncate_ip
from newsletter.tracking.recorder import Recorder
from newsletter.tracking.retention import prune_event_details
from newsletter.tracking.sendgrid import MalformedBatch, parse_batch
from newsletter.tracking.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    BadSignature,
    InvalidPublicKey,
    MissingSignature,
    StaleTimestamp,
    WebhookError,
    WebhookVerifier,
)
from newsletter.tracking.suppression import SuppressionRequest, suppress
from newsletter.tracking.tokens import ContinueSigner, InvalidToken, TokenSigner
from newsletter.tracking.unsubscribe import UnsubscribeResult, unsubscribe
from newsletter.tracking.webhook import IngestResult, PreparedBatch, ingest_events, prepare_batch, store_batch

__all__ = [
    "tokens",
    "TokenSigner",
    "ContinueSigner",
    "InvalidToken",
    "RequestInfo",
    "record_open",
    "record_click",
    "ClickResult",
    "confirm_cta",
    "unsubscribe",
    "UnsubscribeResult",
    "record_opens",
    "record_clicks",
    "Recorder",
    "UnknownLink",
    "UnknownDelivery",
    "classify",
    "Verdict",
    "Classifier",
    "default_classifier",
    "find_bursts",
    "REASONS",
    "DOUBTS",
    "truncate_ip",
    "hash_ip",
    "store_ip",
    "prune_event_details",
    "WebhookVerifier",
    "WebhookError",
    "MissingSignature",
    "BadSignature",
    "StaleTimestamp",
    "InvalidPublicKey",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "parse_batch",
    "MalformedBatch",
    "ingest_events",
    "IngestResult",
    "prepare_batch",
    "store_batch",
    "PreparedBatch",
    "suppress",
    "SuppressionRequest",
    "TrackingOptions",
    "options_from_settings",
    "derive_ip_hash_key",
    "INTEREST_TAGS",
    "InvalidPreferences",
    "Preferences",
    "load_preferences",
    "save_preferences",
    "Engagement",
    "engagement",
]
