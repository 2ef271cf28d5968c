"""Which ``Host`` a request may name, and redirects that never repeat it.

The outbox viewer is for a browser on the same machine (its pages carry names, masked
addresses and live tracking tokens). Checking the client's address is not enough: a page on
``evil.example`` whose name the attacker re-points at 127.0.0.1 (DNS rebinding) is, to the
browser, same-origin with this server, and its script's requests come from 127.0.0.1. What
such a request cannot hide is its ``Host``: ``evil.example``. So the loopback-only pages
answer only for the loopback names and the configured public host (``NEWSLETTER_PUBLIC_URL``),
on any port.

The rest of the app does not check ``Host``: its pages are public anyway (a token is the
credential, and a rebinding page learns nothing it could not fetch directly), and a reverse
proxy may hand the app any upstream name (``app:8000``); refusing those would break every
tracking link in production. Nothing the app answers is built from ``Host`` either: the
trailing-slash redirect is relative (:func:`slash_redirect`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

#: The names a browser on this machine uses for it (any port).
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_HOST = re.compile(r"\[(?P<v6>[0-9a-f:.]{2,45})\]|(?P<name>[a-z0-9._-]{1,253})")
_PORT = re.compile(r":[0-9]{1,5}")


def host_name(header: str | None) -> str | None:
    """The host of a ``Host`` header, lowercased, without port, brackets or a final dot;
    ``None`` for anything else (userinfo, spaces, several hosts, an empty header)."""
    if not header:
        return None
    value = header.strip().lower()
    match = _HOST.match(value)
    if match is None:
        return None
    rest = value[match.end() :]
    if rest and not _PORT.fullmatch(rest):
        return None
    name = match.group("v6") or match.group("name").rstrip(".")
    return name or None


def trusted_hosts(public_url: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The loopback names and the public URL's host (where tracking links point)."""
    public = urlsplit(public_url).hostname
    return LOCAL_HOSTS | ({public.rstrip(".")} if public else set()) | set(extra)


def host_is_trusted(scope: Scope, trusted: frozenset[str]) -> bool:
    """Whether the request's ``Host`` header names one of ``trusted``."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return host_name(value.decode("latin-1")) in trusted
    return False  # HTTP/1.1 requires Host; a request without one is not a browser's


async def slash_redirect(routes: list[BaseRoute], scope: Scope, receive: Receive, send: Send) -> bool:
    """Starlette's trailing-slash redirect (``/u/tok/`` → ``/u/tok``), with a relative
    ``Location``: Starlette builds an absolute URL from the ``Host`` header, so a request with
    ``Host: evil.example`` was sent to ``http://evil.example/u/tok`` (and a shared cache could
    keep that answer for everyone). ``True`` when it answered."""
    path: str = scope["path"]
    if scope["type"] != "http" or path == "/" or len(path) > 2048:
        return False
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    if not other.startswith("/") or other.startswith(("//", "/\\")):
        return False  # "//host" would be a protocol-relative URL: another site
    candidate = {**scope, "path": other}
    if not any(route.matches(candidate)[0] is not Match.NONE for route in routes):
        return False
    # scope["path"] is decoded (and includes any root_path): what would read as a query, a
    # fragment or a Windows path separator is escaped again, as Starlette does.
    location = other.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    query = scope.get("query_string", b"").decode("latin-1")
    await RedirectResponse(location + (f"?{query}" if query else ""))(scope, receive, send)
    return True
