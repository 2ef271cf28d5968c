"""What the command modules share beyond the JSON option and the store (that is
:mod:`newsletter.cli.output`): the two consoles, the exit codes, the settings every command loads
first, a result as JSON or one line, the one-line error, and the daemons' logging."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from rich.console import Console

from newsletter.cli.output import print_json
from newsletter.config import Settings, load_settings
from newsletter.errors import UserError
from newsletter.terminal_text import visible

out = Console(emoji=False)  # a value like :warning: in data is printed as written
err = Console(stderr=True, emoji=False)

EXIT_USER_ERROR = 1
EXIT_INCOMPLETE = 3


def current_settings() -> Settings:
    """What every command but ``demo`` calls first (a bad setting is one line, before any work)."""
    return load_settings()


def print_result(as_json: bool, data: Any, text: str, **style: Any) -> None:
    """What most commands end with: ``data`` as JSON for a script (``--json``), else one
    line of rich markup for a person (``style`` goes to ``Console.print``)."""
    if as_json:
        print_json(data)
    else:
        out.print(text, **style)


def print_error(error: UserError) -> None:
    """One line on stderr; the message is printed as written (a ``[...]`` in it is not markup,
    and a control character quoted from a file is shown, not obeyed) and not wrapped at the
    terminal's width (a script reads one line)."""
    err.print("[red]error:[/] ", end="", highlight=False)
    err.print(visible(error), markup=False, highlight=False, soft_wrap=True)


def configure_logging() -> None:
    """The worker's and the scheduler's log lines on stderr; read before any setting is loaded,
    so a broken setting is still logged at the level asked for."""
    logging.basicConfig(
        level=os.environ.get("NEWSLETTER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
