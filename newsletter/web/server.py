"""Run the web app with uvicorn (``newsletter serve``)."""

from __future__ import annotations

import gc

from newsletter.config import Settings
from newsletter.web.app import create_app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, *, access_log: bool = False) -> None:
    """Serve until interrupted.

    The access log is off by default: its lines carry the reader's full address and the tracking
    token, which the tracking room takes care never to store. ``proxy_headers`` takes the
    reader's address from ``X-Forwarded-For`` when the proxy is trusted (uvicorn's
    ``FORWARDED_ALLOW_IPS``, default 127.0.0.1).
    """
    import uvicorn

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
