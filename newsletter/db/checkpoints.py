"""SQLite only: copy the write-ahead log back into the database file on a thread of its own.

The store's own machinery (PRAGMAs on the SQLite file, no room's rows), so it lives in ``db/``;
the web app owns one per process and uses it around the webhook's commit.

SQLite checkpoints automatically inside the ``COMMIT`` that grows the WAL past 1,000 pages. A
webhook post of 1,000 events writes about that much (every row touches the random index pages
of its subscriber and delivery), so nearly every post's commit would also write those pages
into the database file and wait for the disk to confirm it: 40 % of a post's time on a busy
machine (bench/RESULTS.md, section 4), spent while holding the one write lock. The webhook's
store therefore commits without the automatic checkpoint and asks this thread for one; the
next post is written meanwhile (a passive checkpoint never blocks writers or readers). Every
other connection keeps SQLite's automatic checkpoint, so the WAL stays bounded even if this
thread is not running. PostgreSQL needs none of this.

The open pixel and the click redirect commit small groups many times a second; a checkpoint
after each would keep this thread copying and syncing the same hot pages all the time (a sixth
of the server's CPU under load, bench/RESULTS.md section 4). So checkpoints are at least
``min_interval`` apart: the requests that arrive meanwhile are served by the next one, and the
WAL grows by at most that interval's writes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)


class Checkpointer:
    """One background thread per app; it starts on the first request and stops when idle."""

    def __init__(self, engine: Engine, *, idle_seconds: float = 5.0, min_interval: float = 1.0) -> None:
        self.engine = engine
        self.idle_seconds = idle_seconds
        self.min_interval = min_interval
        self._closing = threading.Event()
        self.runs = 0  # for tests and benchmarks: checkpoints done
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def deferred(self, conn: Connection) -> Iterator[None]:
        """Around a large write's transaction on ``conn`` (enter before it begins): SQLite's
        automatic checkpoint is off for its commit, and this thread checkpoints afterwards. The
        PRAGMAs go to the driver's connection directly, outside SQLAlchemy's transaction."""
        raw = conn.connection.driver_connection
        before = raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]  # type: ignore[union-attr]
        raw.execute("PRAGMA wal_autocheckpoint = 0")  # type: ignore[union-attr]
        try:
            yield
        finally:
            raw.execute(f"PRAGMA wal_autocheckpoint = {int(before)}")  # type: ignore[union-attr]
        self.request()

    def request(self) -> None:
        self._wake.set()
        with self._lock:
            if self._thread is None:
                self._closing.clear()
                self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (the app's shutdown); a last checkpoint runs first if one was asked for."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._closing.set()
            self._wake.set()
            thread.join(timeout)

    def _run(self) -> None:
        me = threading.current_thread()
        try:
            with self.engine.connect() as conn:
                while True:
                    woken = self._wake.wait(self.idle_seconds)
                    self._wake.clear()
                    if woken:
                        self._checkpoint(conn)
                        self._closing.wait(self.min_interval)  # what is asked meanwhile waits for the next one
                    with self._lock:
                        if self._thread is not me or (not woken and not self._wake.is_set()):
                            if self._thread is me:
                                self._thread = None
                            return
        except Exception:  # the next commit elsewhere checkpoints as SQLite always does; say why
            log.exception("background WAL checkpoint failed")
            with self._lock:
                if self._thread is me:
                    self._thread = None

    def _checkpoint(self, conn: Connection) -> None:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").all()
        conn.rollback()  # the PRAGMA opened no write transaction; end the implicit one cleanly
        self.runs += 1
