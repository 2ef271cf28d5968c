"""Tracking: signed delivery tokens, opens, clicks, unsubscribes, human/machine classification.

Public face (import from here): ``TokenSigner``, ``InvalidToken``, ``RequestInfo``,
``record_open``, ``record_click`` (→ ``ClickResult``), ``unsubscribe`` (→ ``UnsubscribeResult``),
``UnknownLink``, ``UnknownDelivery``, ``classify`` (→ ``Verdict``), ``Classifier``, ``REASONS``,
``truncate_ip``, and the reader's preferences: ``load_preferences``, ``save_preferences``,
``Preferences``, ``InvalidPreferences``, ``INTEREST_TAGS``.

No web framework here: the web room turns requests into :class:`RequestInfo` and results into
responses.
"""

from newsletter.tracking import tokens
from newsletter.tracking.classify import REASONS, Classifier, Verdict, classify, default_classifier
from newsletter.tracking.events import (
    ClickResult,
    RequestInfo,
    UnknownDelivery,
    UnknownLink,
    UnsubscribeResult,
    record_click,
    record_open,
    unsubscribe,
)
from newsletter.tracking.preferences import (
    INTEREST_TAGS,
    InvalidPreferences,
    Preferences,
    load_preferences,
    save_preferences,
)
from newsletter.tracking.privacy import truncate_ip
from newsletter.tracking.tokens import InvalidToken, TokenSigner

__all__ = [
    "tokens", "TokenSigner", "InvalidToken",
    "RequestInfo", "record_open", "record_click", "ClickResult", "unsubscribe", "UnsubscribeResult",
    "UnknownLink", "UnknownDelivery",
    "classify", "Verdict", "Classifier", "default_classifier", "REASONS",
    "truncate_ip",
    "INTEREST_TAGS", "InvalidPreferences", "Preferences", "load_preferences", "save_preferences",
]
