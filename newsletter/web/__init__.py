"""The web face: ``create_app(settings, engine=None)`` (Starlette) and ``serve(settings, host, port)``,
``check_port_free(host, port)`` (a taken port is one line before anything starts).

Tracking routes, public pages and the demo outbox viewer; each handler is a translation of a
request into a call on a room's face (mostly ``newsletter.tracking``).
"""

from newsletter.web.app import create_app
from newsletter.web.server import check_port_free, serve

__all__ = ["check_port_free", "create_app", "serve"]
