"""One normal form for every address the store keeps.

``subscribers.email`` and ``suppressions.email`` are unique on this form, so an address typed
as ``Jane.Doe@Example.com`` in one file and ``jane.doe@example.com`` in another is one person.

Why the *whole* address is lowercased, local part included: RFC 5321 lets a server treat the
local part as case-sensitive, but no mainstream provider does, and the clinic's own list holds
mixed-case duplicates of the same people. Keeping both would mail them twice and, worse, let a
differently-cased copy escape an unsubscribe. The (theoretical) cost is merging two mailboxes
on some exotic server that distinguishes ``Bob@`` from ``bob@``; we accept it.

Validation is syntax only (email-validator with ``check_deliverability=False``): no DNS at
import time, which would be slow on a large file and wrong offline. Special-use domains
(``.test``, ``.local``, ``localhost``, ...) are refused, as email-validator does by default.

Speed: email-validator spends most of its time on the domain (IDNA rules). A list holds a
million addresses but few distinct domains, so a plain ASCII address is split and its domain is
validated once and remembered; anything unusual (quoted or non-ASCII local parts, overlong
parts, a domain that fails) goes through email-validator whole, which also gives the reason.
``tests/audiences/test_audiences.py`` checks the shortcut agrees with email-validator.

Two functions, one form: :func:`normalise_email` for an address a person typed or a file
holds (validated, may be refused), and :func:`trusted_email` (defined in the leaf module
``newsletter/emailaddr.py`` so that ``delivery`` may use it; re-exported here) for an address
already known good: one the provider reports back, or one read from our store. It only trims
and lower-cases, which gives the same form for such an address at a fraction of the cost, on the
webhook's hot path. No other code lower-cases an address.
"""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from newsletter.emailaddr import trusted_email

__all__ = ["InvalidEmail", "normalise_email", "trusted_email"]

# RFC 5322 dot-atom over ASCII "atext": exactly the local parts email-validator accepts unquoted.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_LOCAL_MAX = 64  # RFC 5321 4.5.3.1.1
_EMAIL_MAX = 254  # RFC 3696 errata / email-validator's EMAIL_MAX_LENGTH
# Characters that sneak in from spreadsheets and copy-paste and are never part of an address.
_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"


class InvalidEmail(ValueError):
    """The text is not a usable email address; ``str(error)`` says why, for a person."""


@lru_cache(maxsize=16384)
def _normal_domain(domain: str) -> str | None:
    """The normalised domain if email-validator accepts it, else None (the caller re-asks)."""
    try:
        return validate_email("a@" + domain, check_deliverability=False).domain.lower()
    except EmailNotValidError:
        return None


def normalise_email(raw: str) -> str:
    """Return the address in the store's form: trimmed, validated, lowercased.

    Raises :class:`InvalidEmail` with a human reason ("missing email address", "The part after
    the @-sign is not valid. It should have a period.", ...).
    """
    text = raw.strip().strip(_INVISIBLE).strip() if raw else ""
    if not text:
        raise InvalidEmail("missing email address")
    if text.isascii():
        local, at, domain = text.rpartition("@")
        if at and len(local) <= _LOCAL_MAX and len(text) <= _EMAIL_MAX and _DOT_ATOM.match(local):
            normal_domain = _normal_domain(domain.lower())
            if normal_domain is not None:
                return f"{local.lower()}@{normal_domain}"
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidEmail(str(error)) from None
    return result.normalized.lower()
