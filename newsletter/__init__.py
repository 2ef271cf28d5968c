"""newsletter: articles become responsive campaigns, sent exactly once, tracked honestly.

Rooms (one folder per domain, each with a small public face in its ``__init__``):
config → db → content/render/audiences → campaigns/delivery/tracking → reports → web/cli/scheduler.
See docs/architecture.md.
"""

__version__ = "0.1.0"
