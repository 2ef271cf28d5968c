"""``newsletter events prune``: stored engagement events."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.cli.common import current_settings, print_result
from newsletter.cli.output import JsonOpt, engine_for
from newsletter.errors import UserError

app = typer.Typer(help="Stored engagement events.", no_args_is_help=True)


@app.command("prune")
def events_prune(
    days: Annotated[
        int | None,
        typer.Option("--days", help="Keep details this many days (default NEWSLETTER_EVENT_RETENTION_DAYS)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drop raw details (IP prefix, user agent, payload) of old events; the counts stay."""
    from newsletter.db import session_scope
    from newsletter.tracking import options_from_settings, prune_event_details

    settings = current_settings()
    options = options_from_settings(settings)  # checked even with --days: a bad setting is said early
    keep = days if days is not None else options.retention_days
    if keep < 0:
        raise UserError("must be zero or more", where="--days")
    with session_scope(engine_for(settings)) as session:
        pruned = prune_event_details(session, keep)
    print_result(
        as_json,
        {"pruned": pruned, "older_than_days": keep},
        f"{pruned} event(s) older than {keep} days pruned to their counts.",
    )
