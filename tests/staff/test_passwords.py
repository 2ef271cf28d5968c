"""The rules a new staff password must meet, each refused in one line naming it; argon2id. No store."""

from __future__ import annotations

import time

import pytest

from newsletter.errors import UserError
from newsletter.staff import MAX_LENGTH, MIN_LENGTH, check_new_password
from newsletter.staff.passwords import hash_password, needs_rehash, verify

GOOD = "tea kettle on the windowsill"


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("", f"password: at least {MIN_LENGTH} characters"),
        ("short pass", f"password: at least {MIN_LENGTH} characters"),
        ("x" * (MAX_LENGTH + 1), "password: at most 1,024 characters"),
        ("x" * 10_000_000, "password: at most 1,024 characters"),
        ("long enough\x00but NUL", "password: no NUL characters"),
        ("qwerty123456", "password: one of the 10,000 most common passwords"),
        ("LeaveMeAlone", "password: one of the 10,000 most common passwords"),
    ],
    ids=["empty", "short", "one-too-long", "ten-megabytes", "nul", "common", "common-any-case"],
)
def test_a_weak_or_hostile_password_is_refused_naming_the_rule(password: str, says: str) -> None:
    with pytest.raises(UserError) as refused:
        check_new_password(password)
    assert str(refused.value) == says


def test_a_good_password_passes_at_both_length_limits() -> None:
    assert check_new_password(GOOD) == GOOD
    assert check_new_password("z" * MAX_LENGTH)
    assert check_new_password("été à l'ombre ☀")


def test_the_hash_is_argon2id_and_verifies_only_the_password() -> None:
    stored = hash_password(GOOD)
    assert stored.startswith("$argon2id$") and GOOD not in stored
    assert verify(stored, GOOD) and not verify(stored, GOOD + " ") and not needs_rehash(stored)


def test_a_hash_made_with_weaker_parameters_needs_a_rehash() -> None:
    from argon2 import PasswordHasher

    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(GOOD)
    assert verify(old, GOOD) and needs_rehash(old)


def test_no_hash_and_hostile_input_are_no_and_cheap() -> None:
    assert not verify(None, GOOD)
    assert not verify("not a hash", GOOD)
    started = time.perf_counter()
    assert not verify(hash_password(GOOD), "y" * 10_000_000)
    assert not verify(hash_password(GOOD), GOOD + "\x00")
    assert time.perf_counter() - started < 5
