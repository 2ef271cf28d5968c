"""Kept-alive HTTP connections for the transport's one hot request, owned by the transport.

The official ``sendgrid`` library posts through ``python_http_client``, which opens a new
connection for every request (``urllib``, ``Connection: close``). Against api.sendgrid.com
that is a TCP and a TLS handshake per batch of a thousand recipients: several round trips
across the internet before the body even starts. So :class:`SendGridTransport` posts
``mail/send`` itself, through :class:`KeptAliveConnections` (stdlib ``http.client``), with the
headers the library builds (the API key's ``Authorization`` form, its ``User-Agent``).

Each sending thread keeps its own connection (the dispatcher may have several requests out at
once). What is not safe to reuse is not reused:

* a connection the server has closed or written to while idle (checked with a zero-timeout
  poll before each request, as urllib3 does), or idle longer than ``max_idle`` seconds;
* after any failure, or an answer that says the connection closes.

Failures keep the two meanings the ledger needs. One while connecting or writing the request is
raised as :class:`RequestNotSent`: the server never received a whole request. One after the
request went out (timeout, reset, no answer, a garbled answer) is raised as it comes: the
server may have acted on it. Proxies from the environment are not spoken here (see
:func:`uses_proxy`): the transport leaves those requests to the library, which knows them.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import time
import urllib.request
from email.message import Message
from typing import NamedTuple
from urllib.parse import urlsplit

#: Reuse an idle connection for at most this long: well inside the keep-alive timeouts of
#: common front ends (nginx 75 s, most load balancers 60 s), so the server rarely closes one
#: just as we write to it.
DEFAULT_MAX_IDLE_SECONDS = 20.0


#: SendGrid's answers are a few hundred bytes (errors listed in JSON); whatever answers beyond
#: this is not read into memory, and its connection is not reused.
MAX_ANSWER_BYTES = 1 << 20


class RequestNotSent(Exception):
    """Connecting or writing the request failed: the server never received a whole request."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(cause)
        self.cause = cause


class Answer(NamedTuple):
    """The server's answer, whatever its status (its body at most :data:`MAX_ANSWER_BYTES`)."""

    status: int
    body: bytes
    headers: Message


class _Kept:
    __slots__ = ("connection", "last_used", "owner")

    def __init__(self, connection: http.client.HTTPConnection) -> None:
        self.connection = connection
        self.last_used = time.monotonic()
        self.owner = threading.current_thread()


def uses_proxy(url: str) -> bool:
    """Whether urllib would send requests for ``url`` through a proxy from the environment."""
    parts = urlsplit(url)
    return parts.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(parts.hostname or "")


class KeptAliveConnections:
    """One kept-alive connection per sending thread to one server (``base_url``)."""

    def __init__(
        self, base_url: str, *, max_idle: float = DEFAULT_MAX_IDLE_SECONDS, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._context = (
            ssl_context if ssl_context is not None else (ssl.create_default_context() if self._https else None)
        )
        self.max_idle = max_idle
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: set[_Kept] = set()

    def request(
        self, method: str, path: str, body: bytes, headers: dict[str, str], timeout: float | None = None
    ) -> Answer:
        """Send one request on this thread's connection and read its answer, whatever its status.

        Raises :class:`RequestNotSent` if the request could not be written whole; anything
        raised after that (``TimeoutError``, ``ConnectionError``, ``http.client.HTTPException``)
        means the server may have acted on it.
        """
        kept = self._checked_out(timeout)
        connection = kept.connection
        try:
            connection.request(method, path, body=body, headers=headers)
        except (OSError, http.client.HTTPException) as error:
            self._discard(kept)
            raise RequestNotSent(error) from None  # not a whole request: it cannot have been acted on
        try:
            response = connection.getresponse()
            data = response.read(MAX_ANSWER_BYTES + 1)
        except BaseException:
            self._discard(kept)
            raise
        kept.last_used = time.monotonic()
        if response.will_close or len(data) > MAX_ANSWER_BYTES:  # the rest unread: not reusable
            self._discard(kept)
            data = data[:MAX_ANSWER_BYTES]
        return Answer(response.status, data, response.headers)

    def close(self) -> None:
        """Close every connection (any thread's); a later request opens a new one."""
        with self._lock:
            kept, self._all = list(self._all), set()
        for one in kept:
            one.connection.close()

    def _checked_out(self, timeout: float | None) -> _Kept:
        kept: _Kept | None = getattr(self._local, "kept", None)
        if kept is not None and not self._reusable(kept):
            self._discard(kept)
            kept = None
        if kept is None:
            self._close_orphans()
            kept = _Kept(self._new_connection(timeout))
            self._local.kept = kept
            with self._lock:
                self._all.add(kept)
        connection = kept.connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return kept

    def _close_orphans(self) -> None:
        """Close the connections of sending threads that have ended. A worker keeps one
        transport for days while each campaign's dispatch starts threads of its own; without
        this, every finished dispatch would leave its connections open until the worker stops."""
        with self._lock:
            orphans = [one for one in self._all if not one.owner.is_alive()]
            self._all.difference_update(orphans)
        for one in orphans:
            one.connection.close()

    def open_connections(self) -> int:
        """How many connections are kept now (any thread's)."""
        with self._lock:
            return len(self._all)

    def _reusable(self, kept: _Kept) -> bool:
        sock = kept.connection.sock
        if sock is None:
            return False
        if time.monotonic() - kept.last_used > self.max_idle:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable  # idle and readable: the server closed it (or sent what we never asked for)

    def _new_connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._context)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _discard(self, kept: _Kept) -> None:
        kept.connection.close()
        with self._lock:
            self._all.discard(kept)
        if getattr(self._local, "kept", None) is kept:
            self._local.kept = None
