"""The three staff roles and what each may do (issue 16): a table of named actions, so the
console asks ``can(role, action)`` on the server for every route and every POST, and a test reads
the whole matrix. An action not in the table is a programming mistake (``ValueError``), not a
silent "no"; a role not in :data:`ROLES` may do nothing."""

from __future__ import annotations

from newsletter.errors import UserError

ROLES = ("admin", "marketer", "director")

#: What only an admin may do, beyond everything the marketer may.
_ADMIN_ONLY = frozenset(
    {
        "users.manage",
        "audit.view",
        "settings.view",
        "campaigns.force_send",  # past a failing preflight; a reason is required and stored
        "suppressions.remove",
    }
)

#: The director: reads the figures and works the leads; no sending, no subscriber editing.
_DIRECTOR = frozenset(
    {
        "dashboard.view",
        "reports.view",
        "reports.download",  # CSV, JSON, HTML
        "leads.view",
        "leads.change_status",  # with a note
        "nurture.view",
    }
)

#: The marketer: articles, campaigns, subscribers, segments, nurture, leads and reports.
_MARKETER = _DIRECTOR | frozenset(
    {
        "articles.view",
        "articles.import",
        "campaigns.view",
        "campaigns.create",
        "campaigns.edit",
        "campaigns.clone",
        "campaigns.preview",
        "campaigns.preflight",
        "campaigns.test_send",
        "campaigns.schedule",
        "campaigns.send",
        "campaigns.pause",
        "campaigns.resume",
        "campaigns.cancel",
        "campaigns.resolve",
        "campaigns.retry",
        "subscribers.view",
        "subscribers.edit",
        "subscribers.tag",
        "subscribers.unsubscribe",
        "subscribers.import",
        "segments.view",
        "nurture.edit",
        "leads.export",
    }
)

#: Every named action.
ACTIONS: frozenset[str] = _MARKETER | _ADMIN_ONLY

PERMISSIONS: dict[str, frozenset[str]] = {"admin": ACTIONS, "marketer": _MARKETER, "director": _DIRECTOR}


def can(role: str, action: str) -> bool:
    """May a user with ``role`` do ``action``? Unknown roles may do nothing."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; name it in newsletter/staff/roles.py")
    return action in PERMISSIONS.get(role, frozenset())


def check_role(role: str) -> str:
    """``role`` as stored, or a one-line :class:`UserError` naming the choices."""
    text = (role or "").strip().lower()
    if text not in ROLES:
        raise UserError(f"{role!r} is not a role; use one of {', '.join(ROLES)}", where="role")
    return text
