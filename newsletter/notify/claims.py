"""The ``notifications`` table as a send-once ledger for staff mail.

A key moves through these states, each move one conditional statement committed on its own,
so two processes (two scheduler ticks, a scheduler and a command) can never both send it:

    (no row) ──insert…ON CONFLICT DO NOTHING──► sending ──answer──► sent
                                                   │  error before the provider took it
                                                   ▼
                                                failed ──update…WHERE status='failed'──► sending
                                                   (a later call retries)
    sending ──no answer after the request left──► ambiguous   (never retried: it may have gone out)
    (no row) or failed ──nothing worth sending (an empty digest, a week without news)──► skipped

A row left in ``sending`` by a process that died mid-send stays there: like the campaign
ledger's ``ambiguous`` rows, mail that may have gone out is never sent again on a guess.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select, update

from newsletter.db import rows_changed, session_scope
from newsletter.db.dialect import upsert_insert
from newsletter.db.models import Notification, utcnow

SENDING = "sending"
SENT = "sent"
FAILED = "failed"
AMBIGUOUS = "ambiguous"
SKIPPED = "skipped"

DETAIL_MAX = 2000


def claim(engine: Engine, *, key: str, kind: str, to: str, now: datetime | None = None) -> bool:
    """True when this caller now owns ``key`` and must send it: the row is new, or it had
    failed and this caller won the retry. Committed before returning, so others see it."""
    now = now or utcnow()
    insert = upsert_insert(engine)
    with session_scope(engine) as session:
        created = session.execute(
            insert(Notification)
            .values(key=key, kind=kind, recipient=to, status=SENDING, created_at=now)
            .on_conflict_do_nothing(index_elements=[Notification.key])
            .returning(Notification.id)
        ).first()
        if created is not None:
            return True
        retried = rows_changed(
            session,
            (
                update(Notification)
                .where(Notification.key == key, Notification.status == FAILED)
                .values(status=SENDING, kind=kind, recipient=to, detail=None)
                .execution_options(synchronize_session=False)
            ),
        )
        return retried == 1


def finish(engine: Engine, key: str, status: str, detail: str | None = None) -> None:
    """Record how the send ended (only a row this caller holds in ``sending`` moves)."""
    with session_scope(engine) as session:
        session.execute(
            update(Notification)
            .where(Notification.key == key, Notification.status == SENDING)
            .values(status=status, detail=(detail or None) and detail[:DETAIL_MAX])
            .execution_options(synchronize_session=False)
        )


def status_of(engine: Engine, key: str) -> str | None:
    """The key's state, or None when it was never claimed."""
    with session_scope(engine) as session:
        return session.scalar(select(Notification.status).where(Notification.key == key))


def skip(engine: Engine, *, key: str, kind: str, to: str, reason: str, now: datetime | None = None) -> bool:
    """Settle ``key`` without sending: there was nothing worth a message (a digest with no lead
    in it, a week without news). Later calls then see it done and do not build it again every
    tick. True when this call settled it; a key already sent, being sent or ambiguous is left
    as it is, and a ``failed`` one becomes ``skipped``."""
    now = now or utcnow()
    insert = upsert_insert(engine)
    with session_scope(engine) as session:
        created = session.execute(
            insert(Notification)
            .values(key=key, kind=kind, recipient=to, status=SKIPPED, detail=reason[:DETAIL_MAX], created_at=now)
            .on_conflict_do_nothing(index_elements=[Notification.key])
            .returning(Notification.id)
        ).first()
        if created is not None:
            return True
        return (
            rows_changed(
                session,
                (
                    update(Notification)
                    .where(Notification.key == key, Notification.status == FAILED)
                    .values(status=SKIPPED, detail=reason[:DETAIL_MAX])
                    .execution_options(synchronize_session=False)
                ),
            )
            == 1
        )
