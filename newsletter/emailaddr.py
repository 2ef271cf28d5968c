"""The cheap half of the store's address form: for addresses that are already valid.

The normal form of an email address is defined once, in ``newsletter/audiences/emails.py``
(``audiences.normalise_email``: trimmed, validated with email-validator, lower-cased). Two kinds
of address need no validation, only the same case-folding, and come by the thousand on hot
paths: the addresses SendGrid's Event Webhook reports back to us (25,000 events a second; it
only ever reports addresses we sent to) and the ones read back from our own store (a batch's
recipients, a lookup key). :func:`trusted_email` is that: ``strip().lower()``, nothing else,
about 100 times cheaper than the full normaliser.

It lives here, a leaf module with no imports, rather than in ``audiences``, because
``delivery`` may use only ``db`` and ``config`` (docs/architecture.md): ``audiences`` re-exports
it, and ``audiences/emails.py`` describes both functions. Nothing else lower-cases an address
(``tests/test_one_writer.py`` checks).
"""

from __future__ import annotations

__all__ = ["trusted_email"]


def trusted_email(raw: str) -> str:
    """An address from a trusted source (the provider, or our own store) in the store's form.

    Same result as :func:`newsletter.audiences.normalise_email` for any address that function
    accepts and already stored in its form; an invalid text is folded, not refused (a lookup
    with it then finds nothing).
    """
    return raw.strip().lower()
