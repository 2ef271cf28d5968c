"""``newsletter report``: one campaign, or the trends across newsletters."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import current_settings, err, out
from newsletter.cli.output import JsonOpt, engine_for, print_json
from newsletter.terminal_text import esc
from newsletter.userpaths import check_output_file


def report(
    campaign_id: Annotated[
        int | None, typer.Argument(help="Campaign id; leave out for the trends across newsletters.")
    ] = None,
    weeks: Annotated[
        int | None, typer.Option("--weeks", help="Trends: how many weeks back, the current one included (default 12).")
    ] = None,
    as_json: JsonOpt = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print one long CSV table (section,item,metric,value) instead of text.")
    ] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report with charts to this file.")
    ] = None,
) -> None:
    """Engagement for one campaign (people first, machines set apart), or, with no id, weekly trends across newsletters."""
    from newsletter.db import session_scope
    from newsletter.reports import campaign_report, trends_report

    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json or --csv", param_hint="--csv")
    if campaign_id is not None and weeks is not None:
        raise typer.BadParameter("--weeks is for the trends report: leave out the campaign id", param_hint="--weeks")
    if html is not None:
        check_output_file(html, "--html")  # before the report is computed
    settings = current_settings()
    with session_scope(engine_for(settings)) as session:
        if campaign_id is not None:
            data = campaign_report(session, campaign_id)
        else:
            data = trends_report(session, weeks=12 if weeks is None else weeks, timezone=settings.default_timezone)
    if html is not None:
        from newsletter.reports import write_html

        write_html(html, data, brand=settings.brand_name)
        (err if as_json or as_csv else out).print(f"wrote {esc(html)}", highlight=False)
    if as_json:
        print_json(data)
    elif as_csv:
        from newsletter.reports import to_csv

        sys.stdout.write(to_csv(data))
    elif campaign_id is not None:
        from newsletter.reports.render_text import print_report

        print_report(out, data)
    else:
        from newsletter.reports.render_text import print_trends

        print_trends(out, data)
