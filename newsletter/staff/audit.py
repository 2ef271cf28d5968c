"""The audit log: who did what, when, from where, to what, with what outcome. The one writer of
``audit_log``; a change records its entry in its own transaction (the caller's session), so
the entry is there exactly when the change is. Never a password or its hash in ``detail``."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db.models import AUDIT_OUTCOMES, AuditEntry

#: keys ``detail`` may never carry (checked on every write: a slip fails loudly, in tests)
_SECRET_KEYS = ("password", "hash", "secret", "token")


@dataclass(frozen=True)
class AuditEntryInfo:
    id: int
    at: datetime
    actor: str
    source: str
    action: str
    target: str | None
    outcome: str
    detail: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "source": self.source,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "detail": self.detail,
        }


def cli_actor() -> str:
    """``cli:<login name>`` for a change made at the command line (``cli:unknown`` without one)."""
    name = os.environ.get("USER") or os.environ.get("LOGNAME") or os.environ.get("USERNAME") or ""
    if not name.strip():
        try:
            name = getpass.getuser()
        except Exception:  # noqa: BLE001 (no login name on this system: a bare container)
            name = ""
    return f"cli:{name.strip()[:150] or 'unknown'}"


def record(
    session: Session,
    actor: str,
    action: str,
    target: str | None,
    outcome: str,
    source: str = "cli",
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one entry to the caller's transaction."""
    if outcome not in AUDIT_OUTCOMES:
        raise ValueError(f"audit outcome {outcome!r} is not one of {AUDIT_OUTCOMES}")
    secret = [key for key in detail or {} if any(word in key.lower() for word in _SECRET_KEYS)]
    if secret:
        raise ValueError(f"audit detail may not carry {secret}: never a password, hash or token")
    session.add(
        AuditEntry(actor=actor, source=source, action=action, target=target, outcome=outcome, detail=detail or None)
    )


def list_entries(
    session: Session,
    limit: int = 50,
    *,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
) -> list[AuditEntryInfo]:
    """The newest ``limit`` entries first, optionally only one action, actor or target."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(max(0, limit))
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if target is not None:
        query = query.where(AuditEntry.target == target)
    return [
        AuditEntryInfo(e.id, e.at, e.actor, e.source, e.action, e.target, e.outcome, e.detail)
        for e in session.scalars(query)
    ]
