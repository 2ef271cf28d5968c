"""Staff accounts, roles and the audit log (issue 16, first slice: the command line; the browser
console comes next and enforces :func:`can` on the server).

Public face (import from here):

* accounts (``accounts.py``, the one writer of ``staff_users``): ``add_user(session, email, role,
  name=None, password=None)``, ``list_users``, ``get_user``, ``set_role``, ``disable_user``,
  ``set_password`` → ``StaffUserInfo``; ``check_email`` (the normal form, or a ``UserError``); each change takes ``actor=`` (default ``cli:<login>``)
  and ``source=`` (an IP address, or ``"cli"``) and records its audit entry in the same
  transaction. ``check_password(session, email, password)`` → ``StaffUserInfo | None`` for the
  sign-in (about as long for an unknown email; re-hashes on argon2 parameter changes);
* passwords (``passwords.py``): ``check_new_password`` (at least 12 characters, at most 1,024,
  no NUL, not one of the 10,000 most common), ``MIN_LENGTH``, ``MAX_LENGTH``; argon2id;
* roles (``roles.py``): ``ROLES``, ``ACTIONS``, ``PERMISSIONS``, ``can(role, action)``, ``check_role``;
* audit (``audit.py``, the one writer of ``audit_log``): ``record(session, actor, action, target,
  outcome, source="cli", detail=None)``, ``list_entries(session, limit, ...)`` →
  ``AuditEntryInfo``, ``cli_actor()``.

Uses ``db``, ``audiences`` (the email normal form, ``clean_name``), ``errors``.
"""

from newsletter.staff import audit
from newsletter.staff.accounts import (
    StaffUserInfo,
    add_user,
    check_email,
    check_password,
    disable_user,
    get_user,
    list_users,
    set_password,
    set_role,
)
from newsletter.staff.audit import AuditEntryInfo, cli_actor, list_entries
from newsletter.staff.passwords import MAX_LENGTH, MIN_LENGTH, check_new_password
from newsletter.staff.roles import ACTIONS, PERMISSIONS, ROLES, can, check_role

__all__ = [
    "audit",
    "StaffUserInfo",
    "add_user",
    "check_email",
    "check_password",
    "disable_user",
    "get_user",
    "list_users",
    "set_password",
    "set_role",
    "AuditEntryInfo",
    "cli_actor",
    "list_entries",
    "MAX_LENGTH",
    "MIN_LENGTH",
    "check_new_password",
    "ACTIONS",
    "PERMISSIONS",
    "ROLES",
    "can",
    "check_role",
]
