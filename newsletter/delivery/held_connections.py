"""The database connections a send holds for its whole run, and the recorder that writes
its answers to the ledger behind it.

Apart from :mod:`newsletter.delivery.dispatch` (the pipeline that uses them) because they know
nothing of batches or transports: a held connection runs work and opens itself again when the
database dropped it; the recorder runs writes in order, on its own thread on PostgreSQL. (The
transport's kept-alive HTTP connections are :mod:`newsletter.delivery.connections`.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from newsletter.db.dialect import is_postgres

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class HeldConnection:
    """A connection one thread holds for a whole dispatch, so that its units of work
    (:func:`newsletter.db.session_scope` on it) skip what a pooled checkout costs every time: the
    pre-ping round trip and the pool's bookkeeping, several times a batch on the send's busiest
    thread. ``autocommit`` for single reads, which then cost one round trip, with no BEGIN and
    no ROLLBACK around them.

    Held, it skips the pool's pre-ping, so a connection the database dropped (a restart, a
    failover, an administrator) is found only when it is next used. It is then opened again and
    the work done once more, which is safe for all the work done through it: a claim that failed
    sent nothing (had it committed, its rows wait in flight and turn ambiguous, as after any
    crash); a record writes the same values again (had the first one committed, its batch is
    counted twice in the send log's hourly and daily windows, which errs on the slow side); a
    check only reads.
    """

    def __init__(self, engine: Engine, *, autocommit: bool = False) -> None:
        self.engine = engine
        self.autocommit = autocommit
        self.conn = self._open()

    def _open(self) -> Connection:
        conn = self.engine.connect()
        return conn.execution_options(isolation_level="AUTOCOMMIT") if self.autocommit else conn

    def run(self, work: Callable[[Connection], _T]) -> _T:
        try:
            return work(self.conn)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            log.warning("the database dropped a connection this send held (%s); connecting again", error.orig)
            self.conn.close()
            self.conn = self._open()
            return work(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> HeldConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LedgerRecorder:
    """Writes answers to the ledger behind the dispatcher, one at a time, in order.

    On PostgreSQL a thread of its own, with a connection of its own, records batch N while the
    dispatcher claims batch N+2; on SQLite, which has one writer, it records in line, on the
    dispatcher's connection. At most one record is outstanding: the next waits for it, so a
    failed write surfaces at once and its rows stay in flight (ambiguous after the lease),
    never resent.
    """

    def __init__(self, engine: Engine, campaign_id: int, inline: HeldConnection) -> None:
        self.pool: ThreadPoolExecutor | None = None
        self.held = inline
        self.own: HeldConnection | None = None
        if is_postgres(engine):
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"record-{campaign_id}")
            self.held = self.own = HeldConnection(engine)  # used on the recorder's thread only
        self.pending: Future[None] | None = None

    def first(self, work: Callable[[Connection], None]) -> None:
        """Work to do before the first record (behind the dispatcher where there is a thread)."""
        self._do(lambda: self.held.run(work))

    def record(self, work: Callable[[Connection], None]) -> None:
        """One answer's write (the dispatcher's settle), after the one before it is done."""
        self._do(lambda: self.held.run(work))

    def _do(self, work: Callable[[], None]) -> None:
        self.wait()
        if self.pool is None:
            work()
        else:
            self.pending = self.pool.submit(work)

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def __enter__(self) -> LedgerRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.wait()
        finally:
            if self.pool is not None:
                self.pool.shutdown()
            if self.own is not None:
                self.own.close()
