"""Signed delivery tokens: the only thing that identifies a recipient in a URL.

A token is the ledger row's id, base-36, plus an HMAC (itsdangerous, salted per purpose). It
carries no address or name, so a forwarded link or a server log leaks nothing personal, and
it cannot be forged or walked (changing the id breaks the signature).
"""

from __future__ import annotations

from itsdangerous import BadSignature, Signer

_SALT = "newsletter.delivery-token.v1"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


class InvalidToken(ValueError):
    """The token was altered, truncated, or signed with another key."""


def _to_base36(number: int) -> str:
    if number < 0:
        raise ValueError("delivery ids are positive")
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = _DIGITS[digit] + out
        if number == 0:
            return out


class TokenSigner:
    """Signs and checks delivery tokens with one key; build once, reuse for every recipient."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("a signing key is required")
        self._signer = Signer(secret_key, salt=_SALT, sep=".")

    def sign(self, delivery_id: int) -> str:
        return self._signer.sign(_to_base36(delivery_id)).decode("ascii")

    def verify(self, token: str) -> int:
        try:
            value = self._signer.unsign(token.encode("ascii"))
            return int(value.decode("ascii"), 36)
        except (BadSignature, UnicodeError, ValueError):
            raise InvalidToken("invalid tracking token") from None
