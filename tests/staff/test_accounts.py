"""Staff accounts and the audit log on both stores: each change writes its entry in the same
transaction, each refusal writes nothing, and the sign-in check says no the same way for an
unknown email, a disabled account and a wrong password."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from newsletter.db import session_scope
from newsletter.errors import UserError
from newsletter.staff import (
    add_user,
    check_password,
    disable_user,
    list_entries,
    list_users,
    set_password,
    set_role,
)

GOOD = "tea kettle on the windowsill"
OTHER = "a different long passphrase"


def _add(engine: Engine, email: str = "Ann@Clinic.Example", role: str = "marketer", **kw: object):  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return add_user(s, email, role, password=kw.pop("password", GOOD), actor="cli:tester", **kw)  # type: ignore[arg-type]


def _entries(engine: Engine):  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return list_entries(s, 100)


def test_add_stores_the_normal_email_and_records_the_change(engine: Engine) -> None:
    user = _add(engine, name="  Ann\tLee ")
    assert (user.email, user.name, user.role, user.active, user.password_set) == (
        "ann@clinic.example",
        "Ann Lee",
        "marketer",
        True,
        True,
    )
    [entry] = _entries(engine)
    assert (entry.actor, entry.source, entry.action, entry.target, entry.outcome) == (
        "cli:tester",
        "cli",
        "user.add",
        "ann@clinic.example",
        "ok",
    )
    assert entry.detail == {"role": "marketer", "with_credential": True}


def test_each_change_records_an_entry_and_never_the_password(engine: Engine) -> None:
    _add(engine)
    with session_scope(engine) as s:
        set_role(s, "ann@clinic.example", "director", actor="user:7", source="203.0.113.9")
        set_password(s, "ANN@clinic.example", OTHER, actor="user:7", source="203.0.113.9")
        disable_user(s, "ann@clinic.example", actor="user:7", source="203.0.113.9")
    entries = _entries(engine)
    assert [e.action for e in entries] == ["user.disable", "user.set_password", "user.set_role", "user.add"]
    assert entries[2].detail == {"from": "marketer", "to": "director"}
    assert {(e.actor, e.source) for e in entries[:3]} == {("user:7", "203.0.113.9")}
    assert GOOD not in repr(entries) and OTHER not in repr(entries) and "argon2" not in repr(entries)
    with session_scope(engine) as s:
        [user] = list_users(s)
    assert user.role == "director" and not user.active


def test_an_unchanged_role_and_a_second_disable_record_nothing(engine: Engine) -> None:
    _add(engine)
    with session_scope(engine) as s:
        set_role(s, "ann@clinic.example", "marketer")
        disable_user(s, "ann@clinic.example")
        first = disable_user(s, "ann@clinic.example").disabled_at
    assert [e.action for e in _entries(engine)] == ["user.disable", "user.add"] and first is not None


@pytest.mark.parametrize(
    ("email", "role", "password", "says"),
    [
        ("ann@clinic.example", "marketer", GOOD, "email: ann@clinic.example already has a staff account"),
        ("ANN@clinic.example ", "admin", GOOD, "email: ann@clinic.example already has a staff account"),
        ("bob@clinic.example", "owner", GOOD, "role: 'owner' is not a role"),
        ("bob@clinic.example", "director", "qwerty123456", "password: one of the 10,000 most common passwords"),
        ("bob@clinic.example", "director", "x" * 5000, "password: at most 1,024 characters"),
        ("bob@clinic.example", "director", GOOD + "\x00", "password: no NUL characters"),
        ("bob\x1b[31m@clinic.example", "director", GOOD, "email: "),
        ("bob\n@clinic.example", "director", GOOD, "email: "),
        ("", "director", GOOD, "email: missing email address"),
    ],
    ids=["duplicate", "duplicate-other-case", "role", "common", "long", "nul", "escape", "newline", "empty"],
)
def test_a_refused_add_writes_nothing(engine: Engine, email: str, role: str, password: str, says: str) -> None:
    _add(engine)
    with pytest.raises(UserError) as refused, session_scope(engine) as s:
        add_user(s, email, role, password=password)
    assert str(refused.value).startswith(says) and "\n" not in str(refused.value)
    with session_scope(engine) as s:
        assert [u.email for u in list_users(s)] == ["ann@clinic.example"]
    assert len(_entries(engine)) == 1


def test_changes_to_an_unknown_email_are_refused(engine: Engine) -> None:
    for change in (
        lambda s: disable_user(s, "nobody@clinic.example"),
        lambda s: set_role(s, "nobody@clinic.example", "admin"),
        lambda s: set_password(s, "nobody@clinic.example", GOOD),
    ):
        with pytest.raises(UserError, match="^email: no staff account with email nobody@clinic.example$"):
            with session_scope(engine) as s:
                change(s)
    assert _entries(engine) == []


def test_a_weak_new_password_leaves_the_old_one(engine: Engine) -> None:
    _add(engine)
    with pytest.raises(UserError, match="at least 12"), session_scope(engine) as s:
        set_password(s, "ann@clinic.example", "short")
    with session_scope(engine) as s:
        assert check_password(s, "ann@clinic.example", GOOD) is not None
    assert len(_entries(engine)) == 1


def test_check_password_says_no_for_unknown_disabled_wrong_and_hostile(engine: Engine) -> None:
    _add(engine)
    _add(engine, "dora@clinic.example", "director", password=OTHER)
    with session_scope(engine) as s:
        assert check_password(s, " ANN@clinic.example", GOOD).email == "ann@clinic.example"  # type: ignore[union-attr]
        assert check_password(s, "ann@clinic.example", OTHER) is None
        assert check_password(s, "nobody@clinic.example", GOOD) is None
        assert check_password(s, "not an email", GOOD) is None
        assert check_password(s, "ann@clinic.example", GOOD + "\x00") is None
        assert check_password(s, "ann@clinic.example", "y" * 1_000_000) is None
        disable_user(s, "dora@clinic.example")
        assert check_password(s, "dora@clinic.example", OTHER) is None


def test_an_account_without_a_password_cannot_sign_in(engine: Engine) -> None:
    with session_scope(engine) as s:
        user = add_user(s, "eve@clinic.example", "admin")
        assert not user.password_set and check_password(s, "eve@clinic.example", "") is None


def test_a_hash_with_old_parameters_is_replaced_at_sign_in(engine: Engine) -> None:
    from argon2 import PasswordHasher
    from sqlalchemy import select

    from newsletter.db.models import StaffUser

    _add(engine)
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(GOOD)
    with session_scope(engine) as s:
        s.scalars(select(StaffUser)).one().password_hash = old
    with session_scope(engine) as s:
        assert check_password(s, "ann@clinic.example", GOOD) is not None
    with session_scope(engine) as s:
        new = s.scalars(select(StaffUser)).one().password_hash
    assert new != old and new is not None and new.startswith("$argon2id$v=19$m=65536")
    with session_scope(engine) as s:
        assert check_password(s, "ann@clinic.example", GOOD) is not None


def test_the_audit_refuses_a_secret_in_its_detail(engine: Engine) -> None:
    from newsletter.staff import audit

    with pytest.raises(ValueError, match="never a password"), session_scope(engine) as s:
        audit.record(s, "cli:x", "user.add", "a@b.example", "ok", detail={"password_hash": "$argon2id$..."})
    with pytest.raises(ValueError, match="outcome"), session_scope(engine) as s:
        audit.record(s, "cli:x", "user.add", "a@b.example", "maybe")
    assert _entries(engine) == []


def test_list_entries_newest_first_limited_and_filtered(engine: Engine) -> None:
    for n in range(5):
        _add(engine, f"p{n}@clinic.example")
    with session_scope(engine) as s:
        set_role(s, "p1@clinic.example", "admin")
        newest = list_entries(s, 3)
        roles = list_entries(s, 10, action="user.set_role")
        p3 = list_entries(s, 10, target="p3@clinic.example")
    assert [e.target for e in newest] == ["p1@clinic.example", "p4@clinic.example", "p3@clinic.example"]
    assert [e.action for e in roles] == ["user.set_role"] and [e.action for e in p3] == ["user.add"]


def test_the_only_active_admin_cannot_be_demoted_or_disabled(engine: Engine) -> None:
    _add(engine, "boss@clinic.example", "admin")
    for change in (
        lambda s: set_role(s, "boss@clinic.example", "marketer"),
        lambda s: disable_user(s, "boss@clinic.example"),
    ):
        with pytest.raises(UserError, match="only active admin"), session_scope(engine) as s:
            change(s)
    with session_scope(engine) as s:
        [boss] = list_users(s)
    assert boss.role == "admin" and boss.active
    assert [e.action for e in _entries(engine)] == ["user.add"]  # the refusals wrote nothing

    _add(engine, "second@clinic.example", "admin")
    with session_scope(engine) as s:
        disable_user(s, "second@clinic.example")  # a disabled admin does not count as the other one
    with pytest.raises(UserError, match="only active admin"), session_scope(engine) as s:
        set_role(s, "boss@clinic.example", "director")
    _add(engine, "third@clinic.example", "admin")
    with session_scope(engine) as s:
        assert set_role(s, "boss@clinic.example", "director").role == "director"  # another admin remains
