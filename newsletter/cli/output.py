"""What every ``newsletter`` command module shares: the ``--json`` option, JSON output, and a store
that is created on first use so no command trips over a fresh folder (but never upgraded behind
its owner's back). How values that come from data (names, emails, titles, subjects, notes…) are
printed, literally, is :mod:`newsletter.terminal_text`, which the rooms' text printers share."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from newsletter.config import Settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of text.")]


def _flags_take_no_value_in_help() -> None:
    """Typer 0.29's rich help prints every option's type, a flag's too: ``--json <bool>``, even
    ``--help <bool>``, as if they took a value (``rich_utils._print_options_panel`` calls
    ``display_type_rich`` for every option, while the plain formatter, ``get_help_record``,
    skips flags). However a flag is declared (``bool``, ``is_flag=True``), the only way out short of
    dropping rich help is to have a flag report no type, which is what the rich panel already
    expects of a parameter without one (``None``). Older typers, without the method, are left alone."""
    from typer.core import TyperOption

    show_type = getattr(TyperOption, "display_type_rich", None)
    if show_type is None or getattr(show_type, "_flags_take_no_value", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if self.is_flag and not self.count:
            return None
        return show_type(self, ctx)  # type: ignore[no-any-return]

    display_type_rich._flags_take_no_value = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value_in_help()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def engine_for(settings: Settings) -> Engine:
    """The store every command but ``init`` uses: created when empty, refused in one line when its
    schema is older or newer than this code's (``db.ensure_current``); never upgraded silently."""
    from newsletter.db import ensure_current, make_engine

    engine = make_engine(settings.database_url)
    ensure_current(engine)
    return engine
