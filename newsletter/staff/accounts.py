"""Staff accounts: add, list, change role, disable, set a password, check one at sign-in. The one
writer of ``staff_users``; every change records its audit entry in the same transaction, and
every check is made before anything is written (a bad role, email, name or password, or an email
already taken, writes nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.audiences import InvalidEmail, clean_name, normalise_email
from newsletter.db.models import StaffUser
from newsletter.errors import NotFound, UserError
from newsletter.staff import audit, passwords
from newsletter.staff.roles import check_role

NAME_MAX = 200


@dataclass(frozen=True)
class StaffUserInfo:
    id: int
    email: str
    name: str | None
    role: str
    disabled_at: datetime | None
    password_set: bool
    password_changed_at: datetime | None
    created_at: datetime

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "active": self.active,
            "disabled_at": iso(self.disabled_at),
            "password_set": self.password_set,
            "password_changed_at": iso(self.password_changed_at),
            "created_at": iso(self.created_at),
        }


def _info(user: StaffUser) -> StaffUserInfo:
    return StaffUserInfo(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        disabled_at=user.disabled_at,
        password_set=user.password_hash is not None,
        password_changed_at=user.password_changed_at,
        created_at=user.created_at,
    )


def check_email(raw: str) -> str:
    """``raw`` in the store's normal form, or a one-line :class:`UserError` naming the field."""
    try:
        return normalise_email(raw)
    except InvalidEmail as error:
        raise UserError(str(error), where="email") from None


def _name(raw: str | None) -> str | None:
    name = clean_name(raw)
    if name is not None and len(name) > NAME_MAX:
        raise UserError(f"at most {NAME_MAX} characters", where="--name")
    return name


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _user(session: Session, email: str) -> StaffUser:
    address = check_email(email)
    user = session.scalar(select(StaffUser).where(StaffUser.email == address))
    if user is None:
        raise NotFound(f"no staff account with email {address}", where="email")
    return user


def add_user(
    session: Session,
    email: str,
    role: str,
    name: str | None = None,
    password: str | None = None,
    *,
    actor: str | None = None,
    source: str = "cli",
) -> StaffUserInfo:
    """A new account; without ``password`` it has none until one is set (it cannot sign in)."""
    address, role, name = check_email(email), check_role(role), _name(name)
    hashed = passwords.hash_password(password) if password is not None else None
    if session.scalar(select(StaffUser.id).where(StaffUser.email == address)) is not None:
        raise UserError(f"{address} already has a staff account", where="email")
    now = _now()
    user = StaffUser(
        email=address, name=name, role=role, password_hash=hashed, password_changed_at=now if hashed else None
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # added by someone else since the check above
        raise UserError(f"{address} already has a staff account", where="email") from None
    audit.record(
        session,
        actor or audit.cli_actor(),
        "user.add",
        address,
        "ok",
        source,
        {"role": role, "with_credential": hashed is not None},
    )
    return _info(user)


def _keep_an_admin(session: Session, user: StaffUser, change: str) -> None:
    """Refuse to leave the product with no working admin: only an admin manages accounts, so
    the last one demoted or disabled would lock everyone out of that for good. The active admins
    are locked while counted, so two such changes at once cannot both pass."""
    if user.role != "admin" or user.disabled_at is not None:
        return
    others = session.scalars(
        select(StaffUser.id)
        .where(StaffUser.role == "admin", StaffUser.disabled_at.is_(None), StaffUser.id != user.id)
        .with_for_update()
    ).all()
    if not others:
        raise UserError(
            f"{user.email} is the only active admin and cannot be {change}; add another admin first", where="email"
        )


def list_users(session: Session) -> list[StaffUserInfo]:
    return [_info(u) for u in session.scalars(select(StaffUser).order_by(StaffUser.email))]


def get_user(session: Session, email: str) -> StaffUserInfo:
    return _info(_user(session, email))


def set_role(
    session: Session, email: str, role: str, *, actor: str | None = None, source: str = "cli"
) -> StaffUserInfo:
    new = check_role(role)
    user = _user(session, email)
    if user.role != new:
        _keep_an_admin(session, user, "demoted")
        old, user.role = user.role, new
        session.flush()
        audit.record(
            session, actor or audit.cli_actor(), "user.set_role", user.email, "ok", source, {"from": old, "to": new}
        )
    return _info(user)


def disable_user(session: Session, email: str, *, actor: str | None = None, source: str = "cli") -> StaffUserInfo:
    """Disable the account (it can no longer sign in; its row and history stay). Disabling a
    disabled account changes nothing and records nothing."""
    user = _user(session, email)
    if user.disabled_at is None:
        _keep_an_admin(session, user, "disabled")
        user.disabled_at = _now()
        session.flush()
        audit.record(session, actor or audit.cli_actor(), "user.disable", user.email, "ok", source)
    return _info(user)


def set_password(
    session: Session, email: str, password: str, *, actor: str | None = None, source: str = "cli"
) -> StaffUserInfo:
    hashed = passwords.hash_password(password)
    user = _user(session, email)
    user.password_hash, user.password_changed_at = hashed, _now()
    session.flush()
    audit.record(session, actor or audit.cli_actor(), "user.set_password", user.email, "ok", source)
    return _info(user)


def check_password(session: Session, email: str, password: str) -> StaffUserInfo | None:
    """The account if ``password`` is its password and it is not disabled, else None. About as
    long either way: an unknown or unusable email verifies against a stand-in hash. A hash made
    with older argon2 parameters is replaced (in the caller's transaction)."""
    try:
        address = normalise_email(email)
    except InvalidEmail:
        passwords.verify(None, password)
        return None
    user = session.scalar(select(StaffUser).where(StaffUser.email == address))
    stored = user.password_hash if user is not None else None
    if not passwords.verify(stored, password) or user is None or stored is None or user.disabled_at is not None:
        return None
    if passwords.needs_rehash(stored):
        user.password_hash = passwords.rehash(password)
        session.flush()
    return _info(user)
