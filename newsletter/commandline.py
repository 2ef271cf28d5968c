"""Kept only for the rooms' own commands (``leads/commands.py``, ``nurture/commands.py``) and
the text reports and preflight printer, which still import it: the helpers live in
:mod:`newsletter.cli.output` now. Import from there; this module goes when those imports move."""

from newsletter.cli.output import (
    DataTable,
    JsonOpt,
    engine_for,
    esc,
    plain,
    print_json,
    visible,
)

__all__ = ["DataTable", "JsonOpt", "engine_for", "esc", "plain", "print_json", "visible"]
