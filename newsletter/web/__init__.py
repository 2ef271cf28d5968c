"""The web face: ``create_app(settings, engine=None)`` (Starlette) and ``serve(settings, host, port)``.

Tracking routes, public pages and the demo outbox viewer; each handler is a translation of a
request into a call on a room's face (mostly ``newsletter.tracking``).
"""

from newsletter.web.app import create_app
from newsletter.web.server import serve

__all__ = ["create_app", "serve"]
