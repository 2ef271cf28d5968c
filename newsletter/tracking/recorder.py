"""Group commit for the open pixel and the click redirect.

Every image load of every message is a request; written one by one, each pays for a session, a
thread hand-off, a read, an insert and a commit, and on SQLite the threads then queue for the one
write lock. Instead, requests hand their event to one writer thread and wait; the writer takes
everything that has queued (up to ``max_batch``), stores it with :func:`.opens.record_opens` /
:func:`.clicks.record_clicks` (one read per kind, one multi-row insert) in ONE transaction, and
only then answers each request. So an answered request is a stored event, nothing is lost in a
buffer, and under load a commit is shared by many requests.

If a batch fails, each of its requests is retried alone, so one bad row never costs the others
their event; a request whose own write fails gets the exception (the pixel logs it and still
answers the GIF). The thread starts on the first request and stops after ``idle_seconds``
without work. No web framework here: callers ``await`` plain asyncio futures.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from newsletter.db.models import utcnow
from newsletter.tracking.classify import Classifier, Verdict
from newsletter.tracking.clicks import ClickResult, LinkCache, record_clicks
from newsletter.tracking.events import RequestInfo, UnknownDelivery, UnknownLink
from newsletter.tracking.opens import record_opens
from newsletter.tracking.options import DEFAULT_OPTIONS, TrackingOptions

log = logging.getLogger(__name__)

_STOP = object()


class Recorder:
    def __init__(
        self,
        engine: Engine,
        options: TrackingOptions = DEFAULT_OPTIONS,
        *,
        classifier: Classifier | None = None,
        max_batch: int = 256,
        idle_seconds: float = 5.0,
        around_commit: Callable[[Connection], AbstractContextManager[Any]] | None = None,
    ) -> None:
        """``around_commit(conn)``: entered before each batch's transaction begins and left after
        it commits (the web app's SQLite checkpoints, :mod:`newsletter.db.checkpoints`)."""
        self.engine = engine
        self.around_commit = around_commit
        self.options = options
        self.classifier = classifier
        self.max_batch = max_batch
        self.idle_seconds = idle_seconds
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.links = LinkCache()
        self.batches = 0  # for benchmarks and tests: how many transactions served how many requests
        self.requests = 0

    # --- the request side ----------------------------------------------------------------------

    def open(self, delivery_id: int, request: RequestInfo, now: datetime | None = None) -> Awaitable[Verdict | None]:
        """Await it: the open's verdict once it is stored; ``None`` for an unknown delivery. (A plain
        future rather than a coroutine: one frame less on the hottest path of the app.)"""
        return self._submit("open", (delivery_id, request, now or utcnow()))

    async def click(
        self, delivery_id: int, position: int, request: RequestInfo, now: datetime | None = None
    ) -> ClickResult:
        """The click's result once it is stored; raises :class:`UnknownDelivery` / :class:`UnknownLink`."""
        result = await self._submit("click", (delivery_id, position, request, now or utcnow()))
        if isinstance(result, (UnknownDelivery, UnknownLink)):
            raise result
        return result  # type: ignore[no-any-return]

    def _submit(self, kind: str, item: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((kind, item, loop, future))
        self._ensure_writer()  # under the lock: a writer stopping for idleness checks the queue under it too
        return future

    def _ensure_writer(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tracking-recorder", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop the writer (the app's shutdown)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    # --- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        link = _Link(self.engine)  # this thread's own connection: no pool checkout (and ping) per batch
        try:
            self._serve(link)
        finally:
            link.close()

    def _serve(self, link: _Link) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():  # a request queued after this check starts a new writer
                        self._thread = None
                        return
                continue
            if first is _STOP:
                with self._lock:
                    self._thread = None
                self._drain_after_stop(link)
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            self._write(batch, link)
            if stop:
                with self._lock:
                    self._thread = None
                self._drain_after_stop(link)
                return

    def _drain_after_stop(self, link: _Link) -> None:
        leftover = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                leftover.append(item)
        if leftover:
            self._write(leftover, link)

    def _write(
        self, batch: list[tuple[str, tuple[Any, ...], asyncio.AbstractEventLoop, asyncio.Future[Any]]], link: _Link
    ) -> None:
        try:
            results = self._store(batch, link)
        except Exception as exc:  # noqa: BLE001 - answered below, per request
            link.close()  # a connection that failed is not trusted again; the next batch gets a fresh one
            if len(batch) == 1:
                log.warning("could not store a %s event: %s", batch[0][0], exc)
                results = [exc]
            else:
                for one in batch:  # one bad row must not cost the others their event
                    self._write([one], link)
                return
        self.batches += 1
        self.requests += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for (_, _, loop, future), result in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append((future, result))
        for loop, answers in by_loop.items():  # one wake-up of each loop per batch, not per request
            try:
                loop.call_soon_threadsafe(_settle_all, answers)
            except RuntimeError:  # the request's loop is gone (server shut down): nobody to answer
                pass

    def _store(self, batch: list[tuple[str, tuple[Any, ...], Any, Any]], link: _Link) -> list[Any]:
        opens = [(i, item) for i, (kind, item, _, _) in enumerate(batch) if kind == "open"]
        clicks = [(i, item) for i, (kind, item, _, _) in enumerate(batch) if kind == "click"]
        results: list[Any] = [None] * len(batch)
        conn = link.get()
        with (self.around_commit or _nothing)(conn), conn.begin():
            if opens:
                for (i, _), verdict in zip(
                    opens,
                    record_opens(conn, [item for _, item in opens], options=self.options, classifier=self.classifier),
                    strict=True,
                ):
                    results[i] = verdict
            if clicks:
                for (i, _), result in zip(
                    clicks,
                    record_clicks(
                        conn,
                        [item for _, item in clicks],
                        options=self.options,
                        classifier=self.classifier,
                        link_cache=self.links,
                    ),
                    strict=True,
                ):
                    results[i] = result
        return results


class _Link:
    """The writer thread's connection, opened on first use and kept between batches."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None

    def get(self) -> Connection:
        if self.conn is None:
            self.conn = self.engine.connect()
        return self.conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken; the pool replaces it
                log.debug("closing the recorder's connection failed", exc_info=True)


def _nothing(_conn: Connection) -> AbstractContextManager[None]:
    return nullcontext()


def _settle_all(answers: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in answers:
        if future.done():  # the client went away and the request was cancelled
            continue
        if isinstance(result, BaseException) and not isinstance(result, (UnknownDelivery, UnknownLink)):
            future.set_exception(result)
        else:
            future.set_result(result)
