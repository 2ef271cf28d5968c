"""``newsletter segment count|list``: the segments in audiences/*.yaml."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.cli.common import EXIT_INCOMPLETE, current_settings, out, print_error, print_result
from newsletter.cli.output import JsonOpt, engine_for, print_json
from newsletter.terminal_text import esc

app = typer.Typer(help="Inspect segments (audiences/*.yaml).", no_args_is_help=True)


@app.command("count")
def segment_count(
    name: Annotated[str, typer.Argument(help="Segment name (file name without .yaml), or 'all'.")],
    as_json: JsonOpt = False,
) -> None:
    """Count the subscribers a segment selects (active, not suppressed)."""
    from newsletter.audiences import count_segment, load_segment
    from newsletter.db import session_scope

    settings = current_settings()
    segment = load_segment(name, settings.audiences_dir)
    with session_scope(engine_for(settings)) as session:
        count = count_segment(session, segment)
    print_result(as_json, {"segment": name, "count": count}, f"{esc(name)}: {count} subscriber(s)")


@app.command("list")
def segment_list(as_json: JsonOpt = False) -> None:
    """List the segments defined in the audiences folder; a broken file is named, the others
    still listed, and the exit code is 3 (the listing is not complete)."""
    from newsletter.audiences import scan_segments

    found, errors = scan_segments(current_settings().audiences_dir)
    segments = [{"name": s.name, "description": s.description} for s in found]
    if as_json:
        print_json({"segments": segments, "errors": [{"where": e.where, "message": e.message} for e in errors]})
    else:
        for s in segments:
            out.print(f"[cyan]{esc(s['name'])}[/]  {esc(s['description'] or '')}")
        for error in errors:
            print_error(error)
    if errors:
        raise typer.Exit(EXIT_INCOMPLETE)
