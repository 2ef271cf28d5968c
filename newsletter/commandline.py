"""What every ``newsletter`` command shares, whichever module defines it (``cli.py`` and the
rooms' own ``commands.py``): the ``--json`` option, JSON output, and a store that is created or
upgraded on first use so no command trips over a fresh folder."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from newsletter.config import Settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of text.")]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def engine_for(settings: Settings) -> Engine:
    from newsletter.db import current_revision, head_revision, make_engine, upgrade

    engine = make_engine(settings.database_url)
    if current_revision(engine) != head_revision():
        upgrade(engine)
    return engine
