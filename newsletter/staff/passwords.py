"""Staff passwords: the rules a new one must meet, argon2id hashing (argon2-cffi), and a verify
that costs the same whether or not there is a hash to check against.

The rules, each refused in one line naming it: at most :data:`MAX_LENGTH` characters (argon2
takes any length; a megabyte typed into a login form should cost nothing), no NUL character, at
least :data:`MIN_LENGTH`, and not one of the 10,000 most common passwords (the head of the
frequency list bundled with ``zxcvbn``, loaded on first use: about 20 ms).
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from newsletter.errors import UserError

MIN_LENGTH = 12
MAX_LENGTH = 1024
COMMON_COUNT = 10_000


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with argon2-cffi's current recommended parameters


@cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    return frozenset(FREQUENCY_LISTS["passwords"][:COMMON_COUNT])


@cache
def _dummy_hash() -> str:
    """A hash of nothing anyone knows, verified when there is no real one (unknown email, no
    password set, disabled account), so the answer takes as long as a real check."""
    return _hasher().hash("not a password: a timing stand-in")


def check_new_password(password: str) -> str:
    """``password`` if it meets the rules, else a :class:`UserError` naming the rule broken."""
    if len(password) > MAX_LENGTH:
        raise UserError(f"at most {MAX_LENGTH:,} characters", where="password")
    if "\x00" in password:
        raise UserError("no NUL characters", where="password")
    if len(password) < MIN_LENGTH:
        raise UserError(f"at least {MIN_LENGTH} characters", where="password")
    if password.lower() in _common():
        raise UserError(f"one of the {COMMON_COUNT:,} most common passwords", where="password")
    return password


def hash_password(password: str) -> str:
    """The argon2id hash of a password that has passed :func:`check_new_password`."""
    return _hasher().hash(check_new_password(password))


def verify(stored: str | None, password: str) -> bool:
    """Does ``password`` match ``stored``? With no hash, a stand-in is verified and the answer is
    no; an over-long or NUL-bearing input is no at once (never hashed)."""
    if len(password) > MAX_LENGTH or "\x00" in password:
        return False
    try:
        return _hasher().verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):  # a mismatch is a VerificationError
        return False


def needs_rehash(stored: str) -> bool:
    """Was ``stored`` made with other parameters than today's? Then re-hash at the next sign-in."""
    return _hasher().check_needs_rehash(stored)


def rehash(password: str) -> str:
    """A fresh hash of a password already verified (it met the rules when it was set)."""
    return _hasher().hash(password)
