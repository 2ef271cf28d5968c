"""The ``newsletter`` command. Thin: every command parses, calls a room's face, prints.

One module per command group: :mod:`~newsletter.cli.articles`, :mod:`~newsletter.cli.subscribers`,
:mod:`~newsletter.cli.segments`, :mod:`~newsletter.cli.campaigns`, :mod:`~newsletter.cli.events`,
:mod:`~newsletter.cli.reports`, :mod:`~newsletter.cli.leads`, :mod:`~newsletter.cli.nurture`,
:mod:`~newsletter.cli.users` (``users …``, ``audit``),
:mod:`~newsletter.cli.db` (``init``, ``db …``) and :mod:`~newsletter.cli.daemons` (``serve``,
``worker``, ``scheduler``, ``demo``). Each calls the rooms' faces only (``tests/test_boundaries.py``).
The ``--json`` option, JSON output and the store are :mod:`newsletter.cli.output`; values from data
are printed literally through :mod:`newsletter.terminal_text`; consoles, exit codes and the settings
every command loads are :mod:`newsletter.cli.common`. This module holds the root app, ``main()``
(nothing reaches a person as a traceback) and ``scheduler_main()``.

Exit codes: 0 done; 1 a user mistake or a refused action (one line on stderr, no traceback);
2 a usage error (unknown option, missing argument); 3 the command ran but did not finish its
job (a send paused by the provider, or recipients failed or left ambiguous).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

import typer

from newsletter.cli.common import EXIT_USER_ERROR, configure_logging, err, print_error
from newsletter.errors import UserError
from newsletter.terminal_text import visible

__all__ = ["app", "build_app", "main", "scheduler_main"]


@cache
def build_app() -> typer.Typer:
    """The root ``newsletter`` app with every group mounted, built once, on first use (PEP 562
    ``app`` below): importing :mod:`newsletter.cli.common` or ``scheduler_main`` does not load
    every group and the rooms' faces they import (the leads face brings SQLAlchemy)."""
    from newsletter.cli import (
        articles,
        campaigns,
        daemons,
        db,
        events,
        leads,
        nurture,
        reports,
        segments,
        subscribers,
        users,
    )

    app = typer.Typer(
        help="Articles to responsive email campaigns: import, segment, send exactly once, track honestly.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    for group, name in (
        (articles.app, "article"),
        (subscribers.app, "subscribers"),
        (segments.app, "segment"),
        (campaigns.app, "campaign"),
        (events.app, "events"),
        (db.app, "db"),
        (nurture.app, "nurture"),
        (leads.app, "leads"),
        (users.app, "users"),
    ):
        app.add_typer(group, name=name)
    for command in (db.init, reports.report, daemons.serve, daemons.worker, daemons.scheduler, daemons.demo):
        app.command()(command)
    app.command("audit")(users.audit_log)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return build_app()
    raise AttributeError(f"module 'newsletter.cli' has no attribute {name!r}")


def scheduler_main() -> None:
    """``newsletter scheduler`` and ``python scheduler.py``: the daemon, with the command's manners
    (a mistake is one line, a bug one line and a crash log)."""
    from newsletter.config import load_settings
    from newsletter.scheduling import run_scheduler

    configure_logging()

    def run() -> None:
        try:
            run_scheduler(load_settings())
        except KeyboardInterrupt:
            pass

    _guarded(run)


def _guarded(run: Callable[[], object]) -> None:
    """Run a command so that nothing reaches the person as a Python traceback: a user's mistake
    is one line and exit 1; anything else is a bug, said in one line with the crash log that
    holds its full trace (``newsletter.crashlog``), exit 70. SystemExit (typer's usage errors
    and exit codes included) and KeyboardInterrupt pass through untouched."""
    from newsletter.crashlog import EXIT_BUG, crash_line, write_crash_log

    try:
        run()
    except UserError as error:
        print_error(error)
        sys.exit(EXIT_USER_ERROR)
    except BrokenPipeError:  # `newsletter … | head`: the reader left; nothing to say to them
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_USER_ERROR)
    except Exception as error:  # noqa: BLE001 (the last resort: a bug, said in one line, its trace logged)
        line = crash_line(error, write_crash_log(error))
        err.print("[red]error:[/] ", end="", highlight=False)
        err.print(visible(line), markup=False, highlight=False, soft_wrap=True)
        sys.exit(EXIT_BUG)


def main() -> None:
    _guarded(build_app())
