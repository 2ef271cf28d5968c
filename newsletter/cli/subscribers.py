"""``newsletter subscribers import``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import (
    EXIT_INCOMPLETE,
    EXIT_USER_ERROR,
    current_settings,
    err,
    out,
    print_error,
)
from newsletter.cli.output import JsonOpt, engine_for, print_json
from newsletter.errors import UserError
from newsletter.terminal_text import esc

app = typer.Typer(help="Import subscribers.", no_args_is_help=True)


@app.command("import")
def subscribers_import(
    csv_path: Annotated[Path, typer.Argument(help="The project's CSV format or a Mailchimp export.")],
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Add this tag to every imported subscriber (repeatable).")
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            help="Write the rejected rows (line,email,reason) here; default: NAME.rejected.csv beside the CSV.",
        ),
    ] = None,
    encoding: Annotated[
        str | None, typer.Option("--encoding", help="The file's encoding, e.g. cp1252 or utf-16 (default: detected).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import subscribers: valid rows go in, every rejected row is reported with its line.

    Exit code 0 when every row went in, 3 when some rows were rejected, 1 when all were."""
    from newsletter.audiences import import_subscribers, rejects_path_for

    settings = current_settings()
    report = import_subscribers(
        engine_for(settings),
        csv_path,
        tags=tag or (),
        progress=None if not as_json else False,
        rejects=rejects or rejects_path_for(csv_path),
        encoding=encoding,
    )
    if as_json:
        print_json(report.to_dict())
    else:
        for notice in report.notices:
            err.print(f"note: {esc(notice)}", highlight=False)
        out.print(
            f"{report.created} created, {report.updated} updated, {report.duplicates_merged} duplicates merged, "
            f"{report.rejected_count} rejected (of {report.total_rows} rows)."
        )
        for rejection in report.rejected[:50]:
            err.print(f"  {esc(csv_path)}:{rejection.line}: {esc(rejection.reason)}", highlight=False)
        if report.rejects_file:
            more = f"… and {report.rejected_count - 50} more; all" if report.rejected_count > 50 else "All"
            err.print(f"  {more} rejected rows are in {esc(report.rejects_file)}", highlight=False)
    if report.all_rejected:
        print_error(UserError(f"every row was rejected ({report.rejects_file or 'see above'})", report.path))
        raise typer.Exit(EXIT_USER_ERROR)
    if report.rejected_count:
        raise typer.Exit(EXIT_INCOMPLETE)
