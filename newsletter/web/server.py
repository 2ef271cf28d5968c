"""Run the web app with uvicorn (``newsletter serve``)."""

from __future__ import annotations

import errno
import gc
import socket

from newsletter.config import Settings
from newsletter.errors import UserError
from newsletter.web.app import create_app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, *, access_log: bool = False) -> None:
    """Serve until interrupted.

    The access log is off by default: its lines carry the reader's full address and the tracking
    token, which the tracking room takes care never to store. ``proxy_headers`` takes the
    reader's address from ``X-Forwarded-For`` when the proxy is trusted (uvicorn's
    ``FORWARDED_ALLOW_IPS``, default 127.0.0.1).
    """
    import uvicorn

    check_port_free(host, port)
    app = create_app(settings)
    settle_memory()
    uvicorn.run(app, host=host, port=port, access_log=access_log, proxy_headers=True, server_header=False)


def settle_memory() -> None:
    """Once the app is built: move everything alive now (modules, the app, SQLAlchemy's tables and
    compiled statements) out of the garbage collector's sight. A webhook post allocates tens of
    thousands of short-lived objects, and each full collection would otherwise walk all of those
    long-lived ones again: about a quarter of a post's Python time (bench/RESULTS.md, section 4)."""
    gc.collect()
    gc.freeze()


def check_port_free(host: str, port: int) -> None:
    """Refuse, in one line, an address the server could not listen on: said before any work (the
    demo runs its whole pipeline first), not as uvicorn's "[Errno 98]" at the end. Binds a socket
    the way uvicorn does (``SO_REUSEADDR``, IPv6 for an address with a colon) and lets it go; a
    program that takes the port in between still meets uvicorn's own refusal."""
    if not 0 < port < 65536:
        raise UserError(f"{port} is not a port number (1-65535)", where="--port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror as error:
            raise UserError(f"cannot listen on {host!r}: {error.strerror}", where="--host") from None
        except OSError as error:
            raise _bind_error(host, port, error) from None


def _bind_error(host: str, port: int, error: OSError) -> UserError:
    if error.errno == errno.EADDRINUSE:
        return UserError(f"port {port} is busy: use --port (another program listens on {host}:{port})")
    if error.errno == errno.EACCES:
        return UserError(
            f"not allowed to listen on port {port} (ports below 1024 need privileges): use --port", where="--port"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return UserError(f"{host} is not an address of this machine", where="--host")
    return UserError(f"cannot listen on {host}:{port}: {error.strerror or error}", where="--port")
