"""Delivery tokens and continue links keep their format byte for byte.

Tokens sit in emails already sent: a change of signing code that altered one byte would break
every pixel and link in them. The pinned values were made by the hand-built HMAC that signed
tokens before the standard library's ``hmac`` did (issue 15), for a fixed key.
"""

from __future__ import annotations

import pytest
from itsdangerous import BadSignature, Signer

from newsletter.tracking import ContinueSigner, InvalidToken, TokenSigner
from newsletter.tracking.tokens import _CONTINUE_SALT, _SALT

KEY = "pinned test key"

#: delivery id -> its token under KEY, as the code before issue 15 made it.
PINNED_TOKENS = {
    0: "0.pA8UEsjGO9JkDlkgi4uqJv0R1nU",
    1: "1.9EltGICak7ZFwv1yqM_kKjwz6y0",
    35: "z.1_T1DjxRC5Qdv4QBoaQ1YrXkt1w",
    1296: "100.Oh303GAByD7_yLg8Ot8IHeP6Rnw",
    123_456: "2n9c.unUobeEAs5LkI2fj26zjQfcF2dA",
    2**40: "e13wu1og.HDZoPjG6_xFNbVzRKKL9L9WYeuA",
    2**63 - 1: "1y2p0ij32e8e7.DDRzCwEug9gDiR71ZgxyVCwNIdg",
}


@pytest.mark.parametrize(("delivery_id", "token"), sorted(PINNED_TOKENS.items()))
def test_tokens_already_sent_are_made_and_accepted_unchanged(delivery_id: int, token: str) -> None:
    signer = TokenSigner(KEY)
    assert signer.sign(delivery_id) == token
    assert signer.verify(token) == delivery_id


def test_a_long_non_ascii_key_signs_as_before() -> None:
    signer = TokenSigner("é key with ünïcode" * 10)
    assert signer.sign(42) == "16.ZCMaJs6TNQS42ahjoKbDaLOpGJs"
    assert signer.verify("16.ZCMaJs6TNQS42ahjoKbDaLOpGJs") == 42


def test_continue_links_already_shown_are_made_and_accepted_unchanged() -> None:
    signer = ContinueSigner(KEY)
    signed = "2n9c.2.mitvfg1s.jkzsRScXCk1feX74ou677kRqhxM"
    assert signer.sign(123_456, 2, 1_765_000_000_000) == signed
    assert signer.verify(signed) == (123_456, 2, 1_765_000_000_000)


def test_itsdangerous_and_we_accept_each_others_tokens() -> None:
    ours, theirs = TokenSigner(KEY), Signer(KEY, salt=_SALT, sep=".")
    for delivery_id, token in PINNED_TOKENS.items():
        assert theirs.unsign(token.encode()) == token.partition(".")[0].encode()
        assert ours.verify(theirs.sign(token.partition(".")[0]).decode()) == delivery_id
    continues = Signer(KEY, salt=_CONTINUE_SALT, sep=".")
    signed = ContinueSigner(KEY).sign(7, 1, 1_000)
    assert continues.unsign(signed.encode()) == b"7.1.rs"
    assert ContinueSigner(KEY).verify(continues.sign("7.1.rs").decode()) == (7, 1, 1_000)


def test_a_token_of_another_key_or_purpose_is_refused() -> None:
    token = PINNED_TOKENS[123_456]
    with pytest.raises(InvalidToken):
        TokenSigner("another key").verify(token)
    with pytest.raises(BadSignature):
        Signer(KEY, salt=_CONTINUE_SALT, sep=".").unsign(token.encode())
    with pytest.raises(InvalidToken):  # signed with the delivery tokens' salt: never a continue link
        ContinueSigner(KEY).verify(Signer(KEY, salt=_SALT, sep=".").sign("2n9c.2.mitvfg1s").decode())
    with pytest.raises(InvalidToken):
        TokenSigner(KEY).verify(ContinueSigner(KEY).sign(123_456, 2, 1_765_000_000_000))


def test_only_the_canonical_signature_is_accepted() -> None:
    """A signature whose last base64 digit differs only in padding bits decodes to the same
    bytes (itsdangerous takes it); we refuse it, so a token has exactly one spelling."""
    token = PINNED_TOKENS[123_456]
    value, signature = token.rsplit(".", 1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variant = f"{value}.{signature[:-1]}{alphabet[alphabet.index(signature[-1]) ^ 1]}"
    assert Signer(KEY, salt=_SALT, sep=".").validate(variant.encode())
    for bad in (variant, token + "=", token.upper(), f"{value}.{signature}é", "é" + token, token + ".x"):
        with pytest.raises(InvalidToken):
            TokenSigner(KEY).verify(bad)
