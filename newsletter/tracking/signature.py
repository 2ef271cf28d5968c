"""SendGrid's Signed Event Webhook: ECDSA P-256 / SHA-256 over ``timestamp + raw body``.

SendGrid signs each post with the account's private key and sends the signature (base64 DER)
in ``X-Twilio-Email-Event-Webhook-Signature`` and the signing time (Unix seconds) in
``X-Twilio-Email-Event-Webhook-Timestamp``; the public key is shown in its settings as base64
DER (SubjectPublicKeyInfo). The signature covers the exact bytes received, so the body must be
checked before it is parsed, and the timestamp must be fresh, or an old captured post could be
replayed.

``cryptography`` is imported when a verifier is built, not when the room is imported: the
pixel and the redirect never need it.
"""

from __future__ import annotations

import base64
import binascii
import math

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_SIGNATURE_CHARS = 400  # a P-256 DER signature is at most 72 bytes, 96 characters of base64
MAX_TIMESTAMP_CHARS = 20


class WebhookError(Exception):
    """Why a post was refused; ``status`` is the HTTP answer, the message is safe to show."""

    status = 403


class MissingSignature(WebhookError):
    status = 401


class BadSignature(WebhookError):
    status = 403


class StaleTimestamp(WebhookError):
    status = 403


class InvalidPublicKey(ValueError):
    """The configured key is not a base64 DER P-256 public key."""


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text.strip(), validate=True)


class WebhookVerifier:
    """Checks posts against one public key; build once (parsing the key is the slow part)."""

    def __init__(self, public_key_b64: str, *, tolerance_seconds: float = 600.0) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        try:
            key = load_der_public_key(_b64decode(public_key_b64))
        except (ValueError, binascii.Error, TypeError) as exc:
            raise InvalidPublicKey(f"not a base64 DER public key ({exc.__class__.__name__})") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise InvalidPublicKey("not an ECDSA P-256 public key (SendGrid's Event Webhook uses P-256)")
        self._key = key
        self._algorithm = ec.ECDSA(hashes.SHA256())
        self.tolerance_seconds = tolerance_seconds

    def verify(self, signature: str | None, timestamp: str | None, body: bytes, *, now: float) -> None:
        """Return quietly, or raise :class:`MissingSignature`, :class:`BadSignature` or
        :class:`StaleTimestamp`. Nothing malformed ever escapes as another exception."""
        from cryptography.exceptions import InvalidSignature

        if not signature or not timestamp:
            raise MissingSignature("missing signature or timestamp header")
        if len(signature) > MAX_SIGNATURE_CHARS or len(timestamp) > MAX_TIMESTAMP_CHARS:
            raise BadSignature("malformed signature or timestamp")
        try:
            der = _b64decode(signature)
        except (ValueError, binascii.Error):
            raise BadSignature("malformed signature") from None
        try:
            self._key.verify(der, timestamp.encode("ascii") + body, self._algorithm)
        except (InvalidSignature, ValueError, UnicodeEncodeError):
            raise BadSignature("signature does not match") from None
        # Checked after the signature so the clock is only trusted from a signed value.
        try:
            signed_at = float(timestamp.strip())
        except ValueError:
            raise BadSignature("timestamp is not a number") from None
        if not math.isfinite(signed_at) or abs(now - signed_at) > self.tolerance_seconds:
            raise StaleTimestamp(
                f"timestamp more than {int(self.tolerance_seconds)} s from now (replayed or clock skew)"
            )
