"""Run the web app with uvicorn (``newsletter serve``)."""

from __future__ import annotations

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

    uvicorn.run(create_app(settings), host=host, port=port, access_log=access_log, proxy_headers=True,
                server_header=False)
