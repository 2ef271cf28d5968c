"""Writing an import's chunks: one transaction each, on a thread of its own.

:class:`ChunkWriter` looks a chunk's addresses up, lets ``import_rules.plan_chunk`` decide each
row, and has the store's writer (``import_stores``) carry it out; :class:`BackgroundWriter`
runs it beside the parser. Memory stays flat whatever the file size: nothing is kept from one
chunk to the next but counters and rejections. A crash mid-file leaves the earlier chunks in;
running the same import again is safe and finishes the job, because every write is an upsert.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError

from newsletter.audiences.import_rules import ChunkPlan, ImportDefaults, ImportRow, plan_chunk
from newsletter.audiences.import_stores import store_for
from newsletter.audiences.rejects import Rejection
from newsletter.audiences.suppression import add_suppressions
from newsletter.db.models import Subscriber

__all__ = ["BackgroundWriter", "ChunkWriter"]


class ChunkWriter:
    """Writes one chunk per transaction and counts what it did.

    The chunks share one connection, opened by the first ``write`` (so in the thread that
    writes) and closed by ``close``: a connection taken from the pool for each chunk cost a
    liveness ping each time (``pool_pre_ping``), 8 ms a chunk with the parser busy beside it.
    """

    def __init__(
        self,
        engine: Engine,
        fmt: str,
        *,
        source: str,
        consent_text_version: str | None,
        extra_tags: Sequence[str],
        now: datetime,
        reject: Callable[[Rejection], None],
    ) -> None:
        self.engine = engine
        self.format = fmt
        self.created = self.updated = self.duplicates_merged = 0
        self.reject = reject  # called on this writer's thread: Rejections.add takes a lock
        self.now = now
        self.store = store_for(engine)
        with engine.connect() as conn:
            max_id_before = conn.scalar(select(func.max(Subscriber.id))) or 0  # see ImportDefaults
        self.defaults = ImportDefaults(
            format=fmt,
            source=source,
            consent_text_version=consent_text_version,
            extra_tags=frozenset(extra_tags),
            now=now,
            max_id_before=max_id_before,
        )
        self._conn: Connection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, chunk: dict[str, ImportRow], release: Callable[[], None] = lambda: None) -> None:
        """Write one chunk in one transaction. ``release`` (idempotent) tells the caller that
        the parser may start on another chunk: at once, or when the store's long wait begins."""
        if self.store.RELEASE_AT_START:
            release()
        if not chunk:
            return
        if self._conn is None:
            self._conn = self.engine.connect()
        conn = self._conn
        plan: ChunkPlan | None = None
        try:
            with conn.begin():
                plan = self._plan(conn, chunk)
                self._apply(conn, plan, plan.existing, release)
        except DBAPIError as error:
            if plan is None or not self.store.lost_race(error):
                raise
            # Someone stored an address of the chunk between the lookup and the insert, and the
            # transaction was rolled back: the same rows again, every one through ON CONFLICT.
            with conn.begin():
                self._apply(conn, plan, None, release)
        self.created += plan.created
        self.updated += plan.updated
        self.duplicates_merged += plan.merged
        for rejection in plan.rejected:
            self.reject(rejection)

    def _plan(self, conn: Connection, chunk: dict[str, ImportRow]) -> ChunkPlan:
        """Look the chunk's addresses up and let the rules decide each row."""
        store = self.store
        known = {email: (sid, status, reason) for email, sid, status, reason in store.lookup(conn, list(chunk))}
        return plan_chunk(chunk, known, self.defaults, db_time=store.db_time, db_json=store.db_json)

    def _apply(self, conn: Connection, plan: ChunkPlan, existing: set[str] | None, release: Callable[[], None]) -> None:
        if plan.rows:
            self.store.write(conn, plan.rows, plan.tagged, existing, release)
        if plan.opt_outs:
            add_suppressions(conn, plan.opt_outs)  # the list's one writer: first reason kept


class BackgroundWriter:
    """Writes chunks on a thread of its own, in order, while the caller parses the next one.

    Parsing and validating addresses is Python work; writing a chunk is mostly waiting for the
    database, during which the driver lets other Python threads run. At most one chunk waits
    while another is written (and one more is parsed), so memory stays at three chunks. A
    failed write stops the import: the next ``write`` (or leaving the block) raises it in the
    caller's thread.

    The parser's slot is freed by the writer (``release``), not by taking the chunk: on SQLite
    at once, on PostgreSQL only when the chunk's long statement is sent. A round trip of the
    writer that ends while the parser runs waits for the GIL (up to ``sys.getswitchinterval()``,
    5 ms) and, on a small machine, for a core: parsing the next chunk during the lookup and the
    ``COPY`` made the lookup of 2,000 addresses take 13 ms instead of 4. Parsing fits into the
    statement's 25 ms instead, during which the writer thread only waits.
    """

    def __init__(self, writer: ChunkWriter) -> None:
        self._writer = writer
        self._queue: queue.Queue[dict[str, ImportRow] | None] = queue.Queue()
        self._slot = threading.Semaphore(1)  # taken by each chunk queued, given back by release()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="import-writer", daemon=True)

    def __enter__(self) -> BackgroundWriter:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while (chunk := self._queue.get()) is not None:
                released = False

                def release() -> None:
                    nonlocal released
                    if not released:
                        released = True
                        self._slot.release()

                if self._error is None:
                    try:
                        self._writer.write(chunk, release)
                    except BaseException as error:  # handed to the caller's thread
                        self._error = error
                release()
        finally:
            try:
                self._writer.close()
            except Exception as error:  # pragma: no cover - closing a connection that broke
                if self._error is None:
                    self._error = error

    def write(self, chunk: dict[str, ImportRow]) -> None:
        self._raise_if_failed()
        self._slot.acquire()
        self._queue.put(chunk)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if kind is None:
            self._raise_if_failed()
